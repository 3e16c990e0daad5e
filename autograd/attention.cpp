#include "autograd/attention.h"

#include "core/ops.h"

namespace attnlab::ag {

namespace {

Var record(const Var& q, const Var& k, const Var& v, const FlashAttentionParams& params,
           const ops::FlashAttentionOut& fwd) {
  Tensor Q = q.data(), K = k.data(), V = v.data(), out = fwd.out, lse = fwd.lse;
  return make_result(fwd.out, "flash_attention", {q, k, v}, [=](const Tensor& g) {
    ops::FlashAttentionGrads gr = ops::flash_attention_backward(Q, K, V, out, lse, g, params);
    return std::vector<Tensor>{gr.dq, gr.dk, gr.dv};
  });
}

}  // namespace

Var flash_attention(const Var& q, const Var& k, const Var& v, const FlashAttentionParams& params) {
  FlashAttentionParams p = params;
  p.entropy = false;
  return record(q, k, v, p, ops::flash_attention(q.data(), k.data(), v.data(), p));
}

std::pair<Var, Tensor> flash_attention_with_entropy(const Var& q, const Var& k, const Var& v,
                                                    FlashAttentionParams params) {
  params.entropy = true;
  ops::FlashAttentionOut fwd = ops::flash_attention(q.data(), k.data(), v.data(), params);
  Tensor entropy = fwd.entropy;
  params.entropy = false;
  return {record(q, k, v, params, fwd), entropy};
}

}  // namespace attnlab::ag
