#pragma once
// The per-head, per-step scalars of the delta rule (layers/attention/linear_attention.h):
//   beta_t = sigmoid(x_t w_beta + b), the writing strength (Yang et al.,
//   "Parallelizing Linear Transformers with the Delta Rule over Sequence Length", sec. 2.2)
//   alpha_t = exp(-exp(A_log) softplus(x_t w_a + b + dt_bias)), the decay of the gated
//   delta rule (Yang et al., "Gated Delta Networks", sec. 3, which takes Mamba-2's
//   parameterisation: A in [1, 16], dt in [0.001, 0.1] at init)
// Parameters, in order: gated: A_log [H], dt_bias [H] (these keep their init:
// GPT::init_weights only touches Linear, Embedding and norms); wb.weight [H, C],
// wb.bias [H]; gated: wa.weight [H, C], wa.bias [H].
#include <memory>

#include "layers/linear.h"

namespace attnlab {

class DeltaGates : public Module {
 public:
  DeltaGates(int64_t d_model, int64_t n_head, bool gated);
  // x [B, T, C] -> beta [B, H, T]
  Var beta(const Var& x);
  // x [B, T, C] -> log alpha [B, H, T]; undefined when not gated.
  Var log_decay(const Var& x);
  bool gated() const { return wa_ != nullptr; }

 private:
  std::shared_ptr<Linear> wb_, wa_;
  Var a_log_, dt_bias_;
};

}  // namespace attnlab
