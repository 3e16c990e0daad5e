#pragma once
// CPU kernels behind core/ops.h (Eigen + OpenMP). core/ops.cpp has validated
// shapes, dtypes and devices and allocated the outputs; these only compute.
#include <cstdint>
#include <vector>

#include "core/attention_params.h"
#include "core/functors.h"
#include "core/tensor.h"

namespace attnlab::cpu {

void fill(Tensor& t, double value);
void copy(Tensor& dst, const Tensor& src);
void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi);
void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std);

void matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, Tensor& out);

void unary(UnaryOp op, const Tensor& x, Tensor& out);
void unary_backward(UnaryOp op, const Tensor& x, const Tensor& dy, Tensor& dx);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out);
void sum_to(const Tensor& x, Tensor& out);
void scale(const Tensor& x, double alpha, Tensor& out);
void add_scalar(const Tensor& x, double value, Tensor& out);
void axpy(Tensor& y, double alpha, const Tensor& x);
void masked_fill(const Tensor& x, const Tensor& mask, double value, Tensor& out);
void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out);

void sum_last(const Tensor& x, double multiplier, Tensor& out);  // out = multiplier * sum
void max_last(const Tensor& x, Tensor& values, Tensor& indices);
void sum_all(const Tensor& x, double multiplier, Tensor& out);
void scatter_last(const Tensor& idx, const Tensor& src, Tensor& out);
void cumsum(const Tensor& x, int64_t dim, bool reverse, Tensor& out);

void softmax(const Tensor& x, bool log, Tensor& out);
void softmax_backward(const Tensor& y, const Tensor& dy, bool log, Tensor& dx);
void cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                   Tensor& loss, Tensor* dlogits, int64_t& count);

void layer_norm(const Tensor& x, const Tensor& w, const Tensor& b, double eps, Tensor& y,
                Tensor& mean, Tensor& rstd);
void layer_norm_backward(const Tensor& x, const Tensor& w, const Tensor& mean, const Tensor& rstd,
                         const Tensor& dy, Tensor& dx, Tensor& dw, Tensor* db);
void rms_norm(const Tensor& x, const Tensor& w, double eps, Tensor& y, Tensor& rstd);
void rms_norm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, const Tensor& dy,
                       Tensor& dx, Tensor& dw);

void embedding(const Tensor& weight, const Tensor& ids, Tensor& out);
void embedding_backward(const Tensor& ids, const Tensor& dy, Tensor& dweight);

void transpose(const Tensor& x, int64_t d0, int64_t d1, Tensor& out);
void concat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out);
void split(const Tensor& x, int64_t dim, std::vector<Tensor>& outs);

// rope.cpp: x [..., T, D], cos/sin [T, h]; out like x (core/ops.h).
void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse, Tensor& out);

// Fused attention (flash_attention*.cpp). lse and entropy may be null (sigmoid
// score has no lse). The backward's schedule is a tuning knob: automatic picks
// by the shape; the others exist so tests can check both.
enum class FlashBackwardSchedule { automatic, per_kv_head, two_pass };
// sink_mass may be null too. The backward's entropy and dentropy are null
// unless the loss depends on the entropy output.
void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& p,
                     Tensor& out, Tensor* lse, Tensor* entropy, Tensor* sink_mass = nullptr);
void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const FlashAttentionParams& p, Tensor& dq,
                              Tensor& dk, Tensor& dv,
                              FlashBackwardSchedule schedule = FlashBackwardSchedule::automatic,
                              const Tensor* entropy = nullptr, const Tensor* dentropy = nullptr);

}  // namespace attnlab::cpu

namespace attnlab::cpu {

// Linear attention family (core/cpu/linear_attention*.cpp). Outputs are allocated;
// g, beta and state0 may be undefined; dg undefined when g is.
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

}  // namespace attnlab::cpu
