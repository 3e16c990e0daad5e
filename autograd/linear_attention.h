#pragma once
// Differentiable linear-attention recurrences (core/ops.h, "linear attention
// family"): the chunkwise kernels for training, and the same recurrences one step
// at a time for decoding and as the reference the kernels are tested against.
//
// q, k [..., T, Dk], v [..., T, Dv]; g: log-gates, undefined, [..., T] or
// [..., T, Dk]; beta [..., T]. `state0` is the state [..., Dk, Dv] before step 0
// (undefined = zeros), a constant: gradients stop there. `state_out`, when given,
// receives the state after the last step.
#include "autograd/var.h"

namespace attnlab::ag {

// S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T,  o_t = S_t^T q_t; chunks of `chunk` steps.
Var linear_attention(const Var& q, const Var& k, const Var& v, const Var& g, int64_t chunk,
                     const Tensor& state0 = Tensor(), Tensor* state_out = nullptr);

// S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T,  o_t = S_t^T q_t.
Var delta_rule(const Var& q, const Var& k, const Var& v, const Var& beta, const Var& g, int64_t chunk,
               const Tensor& state0 = Tensor(), Tensor* state_out = nullptr);

// The recurrences above, step by step, composed of autograd primitives (a graph
// of O(T) small nodes: meant for decoding and for tests). *state is the state
// before the first step (undefined = zeros) and is replaced by the state after
// the last.
Var linear_attention_recurrent(const Var& q, const Var& k, const Var& v, const Var& g, Tensor& state);
Var delta_rule_recurrent(const Var& q, const Var& k, const Var& v, const Var& beta, const Var& g, Tensor& state);

}  // namespace attnlab::ag
