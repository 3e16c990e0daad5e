#pragma once
// GLA's data-dependent diagonal gates (Yang et al., "Gated Linear Attention
// Transformers with Hardware-Efficient Training", sec. 4.4):
//   alpha_t = sigmoid(x_t W1 W2 + b)^(1/tau)   (one gate per key dim and head)
// with a low-rank W1 W2 (rank 16) and temperature tau = 16 so gates start near 1.
// Returned as log alpha = logsigmoid(.) / tau, the chunkwise kernel's log-gates.
// Parameters: w1.weight [rank, C], w2.weight [H*Dk, rank], w2.bias [H*Dk].
#include <memory>

#include "layers/linear.h"

namespace attnlab {

class GLAGate : public Module {
 public:
  GLAGate(int64_t d_model, int64_t n_head, int64_t d_key, int64_t rank, double tau);
  // x [B, T, C] -> log-gates [B, H, T, Dk]
  Var forward(const Var& x);

 private:
  int64_t n_head_, d_key_;
  double tau_;
  std::shared_ptr<Linear> w1_, w2_;
};

}  // namespace attnlab
