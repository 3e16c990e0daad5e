#include "autograd/attention.h"

#include <memory>

#include "autograd/autocast.h"
#include "core/ops.h"

namespace attnlab::ag {

namespace {

// Under autocast the CUDA kernel takes bf16 q, k, v (f32 inside, an f32 lse)
// and the layer sees f32 again; the CPU kernel has no bf16 path and stays f32.
struct Precision {
  bool bf16;
  explicit Precision(const Tensor& q) : bf16(autocast_bf16() && q.dtype() == DType::f32 && q.device().is_cuda()) {}
  Tensor in(const Tensor& t) const { return bf16 && t.defined() ? t.to(DType::bf16) : t; }
  Tensor out(const Tensor& t) const { return bf16 && t.defined() ? t.to(DType::f32) : t; }
};

}  // namespace

Var flash_attention(const Var& q, const Var& k, const Var& v, const FlashAttentionParams& params) {
  FlashAttentionParams p = params;
  p.entropy = p.sink_mass = false;
  const Precision pr(q.data());
  Tensor Q = pr.in(q.data()), K = pr.in(k.data()), V = pr.in(v.data());
  ops::FlashAttentionOut fwd = ops::flash_attention(Q, K, V, p);
  Tensor out = fwd.out, lse = fwd.lse;
  return make_result(pr.out(out), "flash_attention", {q, k, v}, [=](const Tensor& g) {
    ops::FlashAttentionGrads gr = ops::flash_attention_backward(Q, K, V, out, lse, pr.in(g), p);
    return std::vector<Tensor>{pr.out(gr.dq), pr.out(gr.dk), pr.out(gr.dv)};
  });
}

// The graph has one output per node, so the entropy is a second node whose
// only input is the attention output: its backward runs first (it consumes
// the output), parks dH where the attention node finds it, and passes no
// gradient of its own; the attention node's backward then takes dO and dH in
// one pass. Nothing is added when the loss does not reach the entropy.
FlashAttentionWithEntropy flash_attention_with_entropy(const Var& q, const Var& k, const Var& v,
                                                       FlashAttentionParams params) {
  params.entropy = true;
  const Precision pr(q.data());
  Tensor Q = pr.in(q.data()), K = pr.in(k.data()), V = pr.in(v.data());
  ops::FlashAttentionOut fwd = ops::flash_attention(Q, K, V, params);
  params.entropy = params.sink_mass = false;
  Tensor out = fwd.out, lse = fwd.lse, H = fwd.entropy;
  auto dH = std::make_shared<Tensor>();
  Var o = make_result(pr.out(out), "flash_attention", {q, k, v}, [=](const Tensor& g) {
    Tensor dh = std::move(*dH);
    *dH = Tensor();
    ops::FlashAttentionGrads gr = ops::flash_attention_backward(Q, K, V, out, lse, pr.in(g), params,
                                                                dh.defined() ? H : Tensor(), pr.in(dh));
    return std::vector<Tensor>{pr.out(gr.dq), pr.out(gr.dk), pr.out(gr.dv)};
  });
  Var e = make_result(pr.out(H), "flash_attention_entropy", {o}, [dH](const Tensor& g) {
    *dH = dH->defined() ? ops::add(*dH, g) : g;
    return std::vector<Tensor>{Tensor()};
  });
  return {o, e, pr.out(fwd.sink_mass)};
}

}  // namespace attnlab::ag
