#pragma once
// The op table: every tensor op is declared once here and dispatched on the
// tensor's device to core/cpu/ or core/cuda/ (DESIGN principle 1). Ops validate
// their inputs and throw attnlab::Error naming the op, shapes and dtypes.
// Float ops take f32 or f64 (bf16 compute is CUDA-only); index tensors are i32 or i64.
#include <utility>
#include <vector>

#include "core/attention_params.h"
#include "core/functors.h"
#include "core/tensor.h"

namespace attnlab::ops {

// ---- fills and copies ----
void fill(Tensor& t, double value);
void copy(Tensor& dst, const Tensor& src);  // same numel; converts dtype and crosses devices
// Philox fills: element i draws from stream (seed, offset) at index i (core/philox.h).
void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std);

// ---- matrix multiply ----
// op(a) @ op(b), op = transpose of the last two dims when the flag is set.
// a: [..., M, K], b: [..., K, N] with equal batch dims, or b 2-D (shared by all
// batches). Result [..., M, N].
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// Mixed precision (train.precision = bf16): bf16 a and b, f32 result, products
// accumulated in f32 (cuBLASLt's bf16 GEMM with an f32 output). On the CPU the
// operands are widened to f32 first, which gives the same exact products.
Tensor matmul_bf16_f32(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);

// A Linear layer's GEMM with its epilogue: pre = x w^T (+ bias), and y =
// gelu_tanh(pre) (pre kept: the backward's input) or y = pre. x [..., in],
// w [out, in], bias [out] or undefined. With bf16 x and w (mixed precision) pre,
// y and bias are f32, as in matmul_bf16_f32; else all share x's dtype. On CUDA
// the bias and the GELU run in cuBLASLt's epilogue (GELU_AUX_BIAS writes pre
// beside y); elsewhere, and where cuBLASLt declines a layout, they are the
// separate ops, whose results these equal.
struct LinearOut {
  Tensor y, pre;  // pre: only with gelu
};
LinearOut linear(const Tensor& x, const Tensor& w, const Tensor& bias, bool gelu);

// ---- element-wise ----
Tensor unary(UnaryOp op, const Tensor& x);
Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy);  // dy * f'(x)
// NumPy broadcasting: shapes align from the right; a dim of 1 (or a missing one) stretches.
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b);
inline Tensor add(const Tensor& a, const Tensor& b) { return binary(BinaryOp::add, a, b); }
inline Tensor sub(const Tensor& a, const Tensor& b) { return binary(BinaryOp::sub, a, b); }
inline Tensor mul(const Tensor& a, const Tensor& b) { return binary(BinaryOp::mul, a, b); }
inline Tensor div(const Tensor& a, const Tensor& b) { return binary(BinaryOp::div, a, b); }
Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);
// Sums x down to `shape` (the inverse of broadcasting `shape` up to x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);
Tensor scale(const Tensor& x, double alpha);        // alpha * x
Tensor add_scalar(const Tensor& x, double value);   // x + value
void axpy(Tensor& y, double alpha, const Tensor& x);  // y += alpha * x, same shape

// ---- reductions (over the last dim, which is dropped, or over all elements -> shape {}) ----
Tensor sum_last(const Tensor& x);
Tensor mean_last(const Tensor& x);
std::pair<Tensor, Tensor> max_last(const Tensor& x);  // values, i64 argmax (first maximum)
Tensor sum_all(const Tensor& x);
Tensor mean_all(const Tensor& x);
Tensor max_all(const Tensor& x);
// out[..., n] of zeros with out[..., idx[...]] = src[...]; the adjoint of picking by index.
Tensor scatter_last(const Tensor& idx, const Tensor& src, int64_t n);

// ---- softmax over the last dim ----
Tensor softmax(const Tensor& x);
Tensor log_softmax(const Tensor& x);
Tensor softmax_backward(const Tensor& y, const Tensor& dy);      // y = softmax(x)
Tensor log_softmax_backward(const Tensor& y, const Tensor& dy);  // y = log_softmax(x)

// ---- normalisation over the last dim, fused forward and backward ----
struct NormOut {
  Tensor y, mean, rstd;  // mean/rstd: x's shape without the last dim; mean undefined for RMSNorm
};
struct NormGrads {
  Tensor dx, dw, db;  // db undefined when there is no bias
};
// y = (x - mean) * rstd * w + b; `b` may be undefined.
NormOut layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps);
NormGrads layer_norm_backward(const Tensor& x, const Tensor& w, const NormOut& fwd,
                              const Tensor& dy, bool has_bias);
// y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps)
NormOut rms_norm(const Tensor& x, const Tensor& w, double eps);
NormGrads rms_norm_backward(const Tensor& x, const Tensor& w, const NormOut& fwd, const Tensor& dy);

// ---- embedding ----
Tensor embedding(const Tensor& weight, const Tensor& ids);  // [V, D], ids [...] -> [..., D]
// Scatter-add of dy [..., D] into a [vocab, D] gradient.
Tensor embedding_backward(const Tensor& ids, const Tensor& dy, int64_t vocab);

// ---- fused softmax cross-entropy ----
struct CrossEntropyOut {
  Tensor loss;     // shape {}: mean over targets != ignore_index (0 when there are none)
  Tensor dlogits;  // d loss / d logits, same shape as logits; undefined unless requested
  int64_t count = 0;  // targets that counted
};
// logits [N, V], targets [N] (i32/i64). One pass per row computes the loss and its gradient.
CrossEntropyOut cross_entropy(const Tensor& logits, const Tensor& targets,
                              int64_t ignore_index = -100, bool with_grad = true);

// ---- layout ----
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);  // a contiguous copy
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

// ---- rotary position embedding (layers/attention/rope.h), fused ----
// x [..., T, D], cos and sin [T, h] with r = 2h <= D: pairs (i, i + h) of the
// first r dims rotate by the angle of (t, i), the other dims pass through:
//   y[i] = x[i] cos - x[i + h] sin,  y[i + h] = x[i + h] cos + x[i] sin.
// `inverse` rotates by the negated angle (the transpose: rope's backward).
Tensor rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse = false);

// ---- masking and scans ----
// x where mask == 0, `value` where mask != 0; mask broadcasts to x (any dtype).
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
// a where cond != 0 else b; all three broadcast together.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Inclusive prefix sum along `dim`; `reverse` sums from the end (cumsum's adjoint).
Tensor cumsum(const Tensor& x, int64_t dim, bool reverse = false);

// ---- fused attention (FlashAttention-style; parameters in core/attention_params.h) ----
struct FlashAttentionOut {
  Tensor out;      // [B, H, Tq, Dv]
  Tensor lse;      // [B, H, Tq]: log-sum-exp of each row's scores, saved for backward
                   // (-inf for a row that sees no key); undefined for the sigmoid score;
                   // f32 for bf16 inputs (the compute dtype), else q's dtype
  Tensor entropy;  // [B, H, Tq] when params.entropy, else undefined
  Tensor sink_mass;  // [B, H, Tq] when params.sink_mass, else undefined
};
struct FlashAttentionGrads {
  Tensor dq, dk, dv;
};
// q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] with Hkv dividing H: query
// head h reads kv head h / (H / Hkv). Never materialises a [Tq, Tk] matrix.
FlashAttentionOut flash_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                  const FlashAttentionParams& params);
// Gradients from the forward's inputs, its out and lse (lse and out unused, and
// may be undefined, for the sigmoid score) and dout = d loss / d out. With
// `entropy` (the forward's entropy output) and `dentropy` = d loss / d entropy
// (both [B, H, Tq], softmax only; both undefined when the loss does not use the
// entropy) the entropy's gradient is added in the same pass.
FlashAttentionGrads flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                             const Tensor& out, const Tensor& lse, const Tensor& dout,
                                             const FlashAttentionParams& params, const Tensor& entropy = Tensor(),
                                             const Tensor& dentropy = Tensor());

}  // namespace attnlab::ops

namespace attnlab::ops {

// ---- linear attention family: chunkwise kernels (layers/attention/linear_attention.h) ----
// Shapes: q, k [..., T, Dk], v [..., T, Dv], one independent sequence per leading
// index (batch x head); state [..., Dk, Dv]. Causal by construction; scratch is
// O(C^2 + C Dk + Dk Dv) per sequence (the delta rule's backward adds the T/C
// chunk-start states), never T x T.
//
// Gated linear attention, per sequence, with log-gates g (<= 0 for a decay):
//   S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,   o_t = S_t^T q_t
// g undefined: no decay (plain linear attention); g [..., T]: one scalar per step
// (retention's fixed gamma, written log gamma); g [..., T, Dk]: one gate per key dim (GLA).
// Computed in chunks of C steps (Yang et al., "Gated Linear Attention Transformers
// with Hardware-Efficient Training", sec. 3): the quadratic form with the decay mask
// inside a chunk, the carried state S across chunks. state0 (undefined = zeros) is
// the state before step 0, a constant for the backward.
struct LinearAttnOut {
  Tensor o;      // [..., T, Dv]
  Tensor state;  // [..., Dk, Dv] after the last step
};
LinearAttnOut linear_attention_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                       int64_t chunk, const Tensor& state0 = Tensor());
struct LinearAttnGrads {
  Tensor dq, dk, dv, dg;  // dg undefined when g is
};
LinearAttnGrads linear_attention_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                  const Tensor& g, int64_t chunk, const Tensor& state0,
                                                  const Tensor& dout);

// (Gated) delta rule (Yang et al., "Parallelizing Linear Transformers with the Delta
// Rule over Sequence Length"; Yang et al., "Gated Delta Networks"), with beta [..., T]
// and optional scalar log-decays g [..., T] (log alpha_t):
//   S_t = alpha_t (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,   o_t = S_t^T q_t
// Chunkwise through the UT transform: per chunk, (I + strictly-lower(diag(beta) K K^T
// (.) decay)) U = diag(beta) (V - decayed K S_0), then gated linear attention with values U.
// Keys should be L2-normalised (the update is then a contraction for beta in (0, 2)).
LinearAttnOut delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                 const Tensor& g, int64_t chunk, const Tensor& state0 = Tensor());
struct DeltaRuleGrads {
  Tensor dq, dk, dv, dbeta, dg;  // dg undefined when g is
};
DeltaRuleGrads delta_rule_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                           const Tensor& g, int64_t chunk, const Tensor& state0,
                                           const Tensor& dout);

}  // namespace attnlab::ops
