#include "layers/attention/gla.h"

#include "autograd/functions.h"

namespace attnlab {

GLAGate::GLAGate(int64_t d_model, int64_t n_head, int64_t d_key, int64_t rank, double tau)
    : n_head_(n_head), d_key_(d_key), tau_(tau) {
  ATTNLAB_CHECK(rank > 0 && tau > 0, "gla: gate_rank and gate_tau must be positive, got ", rank, " and ", tau);
  w1_ = register_module("w1", std::make_shared<Linear>(d_model, rank, false));
  w2_ = register_module("w2", std::make_shared<Linear>(rank, n_head * d_key, true));
}

Var GLAGate::forward(const Var& x) {
  const int64_t B = x.size(0), T = x.size(1);
  Var z = w2_->forward(w1_->forward(x));
  // log sigmoid(z) = -softplus(-z), stable for either sign of z.
  Var logg = ag::scale(ag::softplus(ag::neg(z)), -1.0 / tau_);
  return ag::transpose(ag::reshape(logg, {B, T, n_head_, d_key_}), 1, 2);
}

}  // namespace attnlab
