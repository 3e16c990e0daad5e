#pragma once
#include <memory>

#include "core/rng.h"
#include "layers/module.h"

namespace attnlab {

// Inverted dropout: in training, each element is kept with probability 1 - p
// and scaled by 1 / (1 - p). The mask is a Philox fill from a Generator (shared
// by all dropout layers of a model), so a fixed seed and the same sequence of
// steps give the same masks on any device. Identity in eval mode or when p = 0.
class Dropout : public Layer {
 public:
  Dropout(double p, std::shared_ptr<Generator> gen);
  Var forward(const Var& x) override;
  double p() const { return p_; }

 private:
  double p_;
  std::shared_ptr<Generator> gen_;
};

}  // namespace attnlab
