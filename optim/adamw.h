#pragma once
// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization"), with
// PyTorch's update rule: per parameter, at step t,
//   p  <- p * (1 - lr * wd)
//   m  <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
//   p  <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// State: "exp_avg" (m) and "exp_avg_sq" (v). CUDA parameters are updated by one
// multi-tensor launch per group with the same arithmetic (core/cuda/optim_kernels.h).
#include "optim/optimizer.h"

namespace attnlab {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;
  // Which parameters decay (used by the NamedVars constructor only).
  DecayFilter decay_filter = default_decay_filter;
};

class AdamW : public Optimizer {
 public:
  // Groups by options.decay_filter: decayed params get weight_decay, the rest 0.
  AdamW(const NamedVars& params, const AdamWOptions& options = {});
  // Explicit groups: each group's weight_decay and lr_scale apply as given.
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
  const AdamWOptions& options() const { return opt_; }

 protected:
  void update(Slot& slot, double lr) override;
  void update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable& table, const Tensor& words,
                     double lr) override;

 private:
  AdamWOptions opt_;
};

}  // namespace attnlab
