#include "layers/attention/diff_attention.h"

#include "autograd/functions.h"

namespace attnlab {

DiffAttention::DiffAttention(int64_t d_model, const AttnOptions& resolved, bool bias)
    : SoftmaxAttention(d_model, resolved, bias) {
  const int64_t D = opts_.d_head;
  lq1_ = register_parameter("lambda_q1", Tensor::zeros({D}));
  lk1_ = register_parameter("lambda_k1", Tensor::zeros({D}));
  lq2_ = register_parameter("lambda_q2", Tensor::zeros({D}));
  lk2_ = register_parameter("lambda_k2", Tensor::zeros({D}));
  subln_ = register_module("subln", std::make_shared<RMSNorm>(2 * D, 1e-5));
}

void DiffAttention::init_parameters(Generator& gen) {
  for (Var* p : {&lq1_, &lk1_, &lq2_, &lk2_}) p->data().normal_(gen, 0.0, 0.1);
}

Var DiffAttention::lambda_var() const {
  Var l1 = ag::exp(ag::sum_all(ag::mul(lq1_, lk1_)));
  Var l2 = ag::exp(ag::sum_all(ag::mul(lq2_, lk2_)));
  return ag::reshape(ag::add_scalar(ag::sub(l1, l2), opts_.diff_lambda_init), {1});
}

double DiffAttention::lambda() const {
  NoGradGuard no_grad;
  return lambda_var().data().item<double>();
}

Var DiffAttention::attend(const Heads& h, const Var& x) {
  (void)x;
  const int64_t B = h.q.size(0), H = opts_.n_head, Hkv = opts_.n_kv_head, T = h.q.size(2), Tk = h.k.size(2);
  const int64_t D = opts_.d_head, G = H / Hkv;
  // Maps (2i, 2i+1) are consecutive query heads: [B, H/2, 2, T, Tk].
  Var w = ag::reshape(weights(h), {B, H / 2, 2, T, Tk});
  Var a = ag::sub(ag::narrow(w, 2, 0, 1), ag::mul(lambda_var(), ag::narrow(w, 2, 1, 1)));
  // Differential head i reads value head i / G: the H/2 heads grouped as
  // [B, Hkv/2, G*T, Tk] against V viewed as Hkv/2 heads of width 2D.
  a = ag::reshape(a, {B, Hkv / 2, G * T, Tk});
  Var v = ag::transpose(ag::reshape(ag::transpose(h.v, 1, 2), {B, Tk, Hkv / 2, 2 * D}), 1, 2);
  Var o = ag::reshape(ag::matmul(a, v), {B, H / 2, T, 2 * D});
  o = ag::scale(subln_->forward(o), 1.0 - opts_.diff_lambda_init);
  return merge_heads(o);
}

}  // namespace attnlab
