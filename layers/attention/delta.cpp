#include "layers/attention/delta.h"

#include <cmath>
#include <vector>

#include "autograd/functions.h"

namespace attnlab {

namespace {
// [B, T, H] -> [B, H, T]
Var heads_first(const Var& x) { return ag::transpose(x, 1, 2); }
}  // namespace

DeltaGates::DeltaGates(int64_t d_model, int64_t n_head, bool gated) {
  wb_ = register_module("wb", std::make_shared<Linear>(d_model, n_head, true));
  if (!gated) return;
  wa_ = register_module("wa", std::make_shared<Linear>(d_model, n_head, true));
  // Deterministic spreads over Mamba-2's init ranges: A from 1 to 16, dt
  // log-spaced from 0.001 to 0.1, stored as softplus^-1(dt) = dt + log(1 - e^-dt).
  std::vector<float> a_log(static_cast<size_t>(n_head)), dt_bias(static_cast<size_t>(n_head));
  for (int64_t h = 0; h < n_head; ++h) {
    double f = n_head > 1 ? static_cast<double>(h) / static_cast<double>(n_head - 1) : 0.0;
    double dt = std::exp(std::log(1e-3) + f * (std::log(0.1) - std::log(1e-3)));
    a_log[static_cast<size_t>(h)] = static_cast<float>(std::log(1.0 + 15.0 * f));
    dt_bias[static_cast<size_t>(h)] = static_cast<float>(dt + std::log(-std::expm1(-dt)));
  }
  a_log_ = register_parameter("A_log", Tensor::from(a_log));
  dt_bias_ = register_parameter("dt_bias", Tensor::from(dt_bias));
}

Var DeltaGates::beta(const Var& x) { return heads_first(ag::sigmoid(wb_->forward(x))); }

Var DeltaGates::log_decay(const Var& x) {
  if (!wa_) return Var();
  Var dt = ag::softplus(ag::add(wa_->forward(x), dt_bias_));  // [B, T, H]
  return heads_first(ag::neg(ag::mul(dt, ag::exp(a_log_))));
}

}  // namespace attnlab
