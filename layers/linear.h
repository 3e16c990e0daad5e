#pragma once
#include "layers/module.h"

namespace attnlab {

// y = x W^T + b. W is [out, in] (PyTorch's layout); x may carry any leading
// dims ([B, T, in]): the shared 2-D weight folds them into one GEMM.
// Parameters start at zero; the owning model initialises them (GPT::init_weights).
class Linear : public Layer {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Var forward(const Var& x) override;

  const Var& weight() const { return weight_; }
  const Var& bias() const { return bias_; }  // undefined without bias
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
  Var weight_, bias_;
};

}  // namespace attnlab
