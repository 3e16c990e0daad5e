#pragma once
// CUDA kernels behind core/ops.h. Same contract as core/cpu/cpu_ops.h: core/ops.cpp
// has validated shapes and dtypes and allocated `out`; these only launch.
// Only compiled when ATTNLAB_HAS_CUDA. No Eigen here (nvcc and Eigen disagree).
#include <cstdint>
#include <vector>

#include "core/attention_params.h"
#include "core/functors.h"
#include "core/tensor.h"

namespace attnlab::cuda {

void fill(Tensor& t, double value);
// Any device pair (host<->device, device<->device); converts dtype on the fly.
void copy(Tensor& dst, const Tensor& src);
void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std);

void unary(UnaryOp op, const Tensor& x, Tensor& out);
void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);  // out: broadcast shape
void scale(const Tensor& x, double alpha, Tensor& out);
void add_scalar(const Tensor& x, double value, Tensor& out);
void axpy(Tensor& y, double alpha, const Tensor& x);

// cuBLASLt (matmul.cu): f32 and f64 computed in their own precision (no TF32),
// bf16 inputs with f32 accumulation.
void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, Tensor& out);
// ops::linear's fused path: y = x w^T + bias (bias may be undefined), and with
// `pre` y = gelu_tanh(pre) through the GELU_AUX epilogue. False when cuBLASLt
// declines (no algorithm, or out-features not a multiple of 8 for the GELU):
// nothing was written and the caller runs the separate ops.
bool linear_epilogue(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& y, Tensor* pre);

// reduce.cu
void sum_to(const Tensor& x, Tensor& out);
void sum_last(const Tensor& x, double multiplier, Tensor& out);  // out = multiplier * sum
void max_last(const Tensor& x, Tensor& values, Tensor& indices);
void sum_all(const Tensor& x, double multiplier, Tensor& out);
void scatter_last(const Tensor& idx, const Tensor& src, Tensor& out);
void cumsum(const Tensor& x, int64_t dim, bool reverse, Tensor& out);

// masking.cu
void masked_fill(const Tensor& x, const Tensor& mask, double value, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);

// softmax.cu
void softmax(const Tensor& x, bool log, Tensor& out);
void softmax_backward(const Tensor& y, const Tensor& dy, bool log, Tensor& dx);
void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index, Tensor& loss,
                   Tensor* dlogits, int64_t& count);

// norm.cu
void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y, Tensor& mean,
                Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dw, Tensor* db);
void rms_norm(const Tensor& x, const Tensor& w, double eps, Tensor& y, Tensor& rstd);
void rms_norm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy, Tensor& dx,
                       Tensor& dw);

// embedding.cu
void embedding(const Tensor& weight, const Tensor& ids, Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dweight);

// layout.cu
void transpose(const Tensor& x, int64_t d0, int64_t d1, Tensor& out);
void concat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out);
void split(const Tensor& x, int64_t dim, std::vector<Tensor>& outs);

// Linear attention family (linear_attention.cu, linear_attention_delta.cu): the
// chunkwise algorithms of linear_attention_chunks.h, one block per sequence; bf16
// runs in f32. Same arguments as the CPU kernels in core/cpu/cpu_ops.h.
void linear_attention_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, int64_t chunk,
                              const Tensor& state0, Tensor& o, Tensor& state);
void linear_attention_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                       int64_t chunk, const Tensor& state0, const Tensor& dout, Tensor& dq,
                                       Tensor& dk, Tensor& dv, Tensor& dg);
void delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                        int64_t chunk, const Tensor& state0, Tensor& o, Tensor& state);
void delta_rule_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                 const Tensor& g, int64_t chunk, const Tensor& state0, const Tensor& dout,
                                 Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dbeta, Tensor& dg);

// rope.cu: x [..., T, D], cos/sin [T, h]; out like x (core/ops.h).
void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse, Tensor& out);

// Fused attention (flash_attention.cu, flash_attention_backward.cu): the CPU
// kernel's contract (core/cpu/cpu_ops.h). lse is f32 for bf16 inputs (the
// compute dtype; ops.cpp allocates it so), entropy and sink_mass are q's dtype;
// lse, entropy, sink_mass may be null as on the CPU. One deterministic
// backward schedule, so no FlashBackwardSchedule.
void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& p,
                     Tensor& out, Tensor* lse, Tensor* entropy, Tensor* sink_mass);
void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const FlashAttentionParams& p, Tensor& dq,
                              Tensor& dk, Tensor& dv, const Tensor* entropy, const Tensor* dentropy);

// Waits for all work on the current device (tests and host reads).
void synchronize();

}  // namespace attnlab::cuda
