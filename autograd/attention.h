#pragma once
// The fused attention kernel as a differentiable function (ops::flash_attention).
#include <utility>

#include "autograd/var.h"
#include "core/attention_params.h"

namespace attnlab::ag {

// q [B, H, Tq, D], k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv].
// Backward recomputes the attention weights block by block from q, k and the
// saved per-row log-sum-exp instead of keeping them.
Var flash_attention(const Var& q, const Var& k, const Var& v, const FlashAttentionParams& params);

// The same, also returning each query row's attention entropy [B, H, Tq]
// (a constant: not differentiated). Softmax score only.
std::pair<Var, Tensor> flash_attention_with_entropy(const Var& q, const Var& k, const Var& v,
                                                    FlashAttentionParams params);

}  // namespace attnlab::ag
