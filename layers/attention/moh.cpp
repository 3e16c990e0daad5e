#include "layers/attention/moh.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "autograd/functions.h"

namespace attnlab {

MoHAttention::MoHAttention(int64_t d_model, const AttnOptions& resolved, bool bias)
    : SoftmaxAttention(d_model, resolved, bias) {
  const int64_t hs = opts_.moh_shared, hr = opts_.n_head - opts_.moh_shared;
  if (hs >= 2) router_shared_ = register_module("router_shared", std::make_shared<Linear>(d_model, hs, false));
  if (hr >= 1) router_routed_ = register_module("router_routed", std::make_shared<Linear>(d_model, hr, false));
  if (hs >= 1 && hr >= 1) router_mix_ = register_module("router_mix", std::make_shared<Linear>(d_model, 2, false));
}

Var MoHAttention::gates(const Var& x, bool record) {
  const int64_t B = x.size(0), T = x.size(1), hs = opts_.moh_shared, hr = opts_.n_head - hs, k = opts_.moh_topk;
  Var shared, routed;
  if (hs >= 2) shared = ag::scale(ag::softmax(router_shared_->forward(x)), static_cast<double>(hs));
  if (hs == 1) shared = Var(Tensor::ones({B, T, 1}, x.dtype(), x.device()));
  if (hr >= 1) {
    Var p = ag::softmax(router_routed_->forward(x));  // [B, T, hr]
    std::vector<double> pv = p.data().to_vector<double>(), m(pv.size(), 0.0);
    std::vector<int64_t> order(static_cast<size_t>(hr));
    for (int64_t r = 0; r < B * T; ++r) {
      const double* row = &pv[static_cast<size_t>(r * hr)];
      std::iota(order.begin(), order.end(), int64_t{0});
      std::stable_sort(order.begin(), order.end(),
                       [&](int64_t a, int64_t b) { return row[a] > row[b]; });  // ties: the lower head
      for (int64_t i = 0; i < k; ++i) m[static_cast<size_t>(r * hr + order[static_cast<size_t>(i)])] = 1.0;
    }
    Tensor mask = Tensor::from(m, {B, T, hr}).to(x.dtype()).to(x.device());
    Var chosen = ag::mul(p, Var(mask));
    Var denom = ag::reshape(ag::sum_last(chosen), {B, T, 1});
    routed = ag::scale(ag::div(chosen, denom), static_cast<double>(k));
    if (record) {
      // f_i: the share of tokens routed to head i; P_i: the mean probability.
      std::vector<double> f(static_cast<size_t>(hr), 0.0);
      for (int64_t r = 0; r < B * T; ++r)
        for (int64_t i = 0; i < hr; ++i) f[static_cast<size_t>(i)] += m[static_cast<size_t>(r * hr + i)];
      for (double& fi : f) fi /= static_cast<double>(B * T);
      Var P = ag::mean_last(ag::transpose(ag::reshape(p, {B * T, hr}), 0, 1));  // [hr]
      Tensor fv = Tensor::from(f, {hr}).to(x.dtype()).to(x.device());
      aux_ = ag::scale(ag::sum_all(ag::mul(P, Var(fv))), static_cast<double>(hr));
    }
  }
  if (router_mix_) {
    Var a = ag::scale(ag::softmax(router_mix_->forward(x)), 2.0);  // [B, T, 2]
    shared = ag::mul(shared, ag::narrow(a, 2, 0, 1));
    routed = ag::mul(routed, ag::narrow(a, 2, 1, 1));
  }
  if (!shared.defined()) return routed;
  if (!routed.defined()) return shared;
  return ag::concat({shared, routed}, 2);
}

Tensor MoHAttention::head_gates(const Var& x) {
  NoGradGuard no_grad;
  return gates(x, false).data();
}

Var MoHAttention::attend(const Heads& h, const Var& x) {
  const int64_t B = x.size(0), T = x.size(1), H = opts_.n_head;
  Var o = SoftmaxAttention::attend(h, x);  // [B, T, H*D]
  Var g = ag::reshape(gates(x, is_training() && grad_enabled()), {B, T, H, 1});
  return ag::reshape(ag::mul(ag::reshape(o, {B, T, H, o.size(2) / H}), g), {B, T, o.size(2)});
}

Var MoHAttention::take_aux_loss() {
  Var out = aux_;
  aux_ = Var();
  return out;
}

}  // namespace attnlab
