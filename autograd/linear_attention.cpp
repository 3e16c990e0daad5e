#include "autograd/linear_attention.h"

#include "autograd/functions.h"
#include "core/ops.h"

namespace attnlab::ag {

namespace {
// The state [..., Dk, Dv] for q [..., T, Dk] and v [..., T, Dv].
Shape state_shape(const Var& q, const Var& v) {
  Shape s(q.shape().begin(), q.shape().end() - 2);
  s.push_back(q.size(-1));
  s.push_back(v.size(-1));
  return s;
}

// Step t of x [..., T, D] as [..., 1, D].
Var step(const Var& x, int64_t t) { return narrow(x, -2, t, 1); }

// The decay of step t to multiply the state [..., Dk, Dv] by: [..., Dk, 1] for
// per-dim gates [..., T, Dk], [..., 1, 1] for per-step gates [..., T].
Var step_decay(const Var& g, int64_t t, int64_t q_dim) {
  Shape s(g.shape());
  if (g.dim() == q_dim) {
    s.erase(s.end() - 2);  // [..., Dk]
    s.push_back(1);
    return exp(reshape(narrow(g, -2, t, 1), s));
  }
  s.back() = 1;
  s.push_back(1);
  return exp(reshape(narrow(g, -1, t, 1), s));
}

Var initial_state(const Tensor& state, const Var& q, const Var& v) {
  if (state.defined()) return Var(state);
  return Var(Tensor::zeros(state_shape(q, v), q.dtype(), q.device()));
}
}  // namespace

Var linear_attention(const Var& q, const Var& k, const Var& v, const Var& g, int64_t chunk, const Tensor& state0,
                     Tensor* state_out) {
  Tensor Q = q.data(), K = k.data(), V = v.data(), G = g.defined() ? g.data() : Tensor();
  ops::LinearAttnOut out = ops::linear_attention_chunked(Q, K, V, G, chunk, state0);
  if (state_out) *state_out = out.state;
  std::vector<Var> inputs{q, k, v};
  if (g.defined()) inputs.push_back(g);
  return make_result(out.o, "linear_attention", inputs, [=](const Tensor& grad) {
    ops::LinearAttnGrads gr = ops::linear_attention_chunked_backward(Q, K, V, G, chunk, state0, grad);
    std::vector<Tensor> grads{gr.dq, gr.dk, gr.dv};
    if (G.defined()) grads.push_back(gr.dg);
    return grads;
  });
}

Var delta_rule(const Var& q, const Var& k, const Var& v, const Var& beta, const Var& g, int64_t chunk,
               const Tensor& state0, Tensor* state_out) {
  Tensor Q = q.data(), K = k.data(), V = v.data(), Bt = beta.data(), G = g.defined() ? g.data() : Tensor();
  ops::LinearAttnOut out = ops::delta_rule_chunked(Q, K, V, Bt, G, chunk, state0);
  if (state_out) *state_out = out.state;
  std::vector<Var> inputs{q, k, v, beta};
  if (g.defined()) inputs.push_back(g);
  return make_result(out.o, "delta_rule", inputs, [=](const Tensor& grad) {
    ops::DeltaRuleGrads gr = ops::delta_rule_chunked_backward(Q, K, V, Bt, G, chunk, state0, grad);
    std::vector<Tensor> grads{gr.dq, gr.dk, gr.dv, gr.dbeta};
    if (G.defined()) grads.push_back(gr.dg);
    return grads;
  });
}

Var linear_attention_recurrent(const Var& q, const Var& k, const Var& v, const Var& g, Tensor& state) {
  ATTNLAB_CHECK(q.dim() >= 2 && q.size(-2) > 0, "linear_attention_recurrent: q must be [..., T, Dk] with T > 0, got ",
                q.data().str());
  Var S = initial_state(state, q, v);
  std::vector<Var> outs;
  for (int64_t t = 0; t < q.size(-2); ++t) {
    if (g.defined()) S = mul(S, step_decay(g, t, q.dim()));
    S = add(S, matmul(step(k, t), step(v, t), true, false));  // + k_t v_t^T
    outs.push_back(matmul(step(q, t), S));                    // o_t^T = q_t^T S_t
  }
  state = S.data();
  return outs.size() == 1 ? outs[0] : concat(outs, -2);
}

Var delta_rule_recurrent(const Var& q, const Var& k, const Var& v, const Var& beta, const Var& g, Tensor& state) {
  ATTNLAB_CHECK(q.dim() >= 2 && q.size(-2) > 0, "delta_rule_recurrent: q must be [..., T, Dk] with T > 0, got ",
                q.data().str());
  Var S = initial_state(state, q, v);
  Shape b_shape(beta.shape());
  b_shape.back() = 1;
  b_shape.push_back(1);
  std::vector<Var> outs;
  for (int64_t t = 0; t < q.size(-2); ++t) {
    if (g.defined()) S = mul(S, step_decay(g, t, q.dim()));
    Var kt = step(k, t), bt = reshape(narrow(beta, -1, t, 1), b_shape);
    // u_t = beta_t (v_t - S^T k_t); S += k_t u_t^T
    Var u = mul(sub(step(v, t), matmul(kt, S)), bt);
    S = add(S, matmul(kt, u, true, false));
    outs.push_back(matmul(step(q, t), S));
  }
  state = S.data();
  return outs.size() == 1 ? outs[0] : concat(outs, -2);
}

}  // namespace attnlab::ag
