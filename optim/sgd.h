#pragma once
// SGD with momentum and L2 weight decay, with PyTorch's update rule:
//   g <- g + wd p
//   b <- g on the first step, else momentum b + (1 - dampening) g
//   g <- g + momentum b (nesterov) or b
//   p <- p - lr g
// State: "momentum_buffer" (b) when momentum != 0, else none. CUDA parameters are
// updated by one multi-tensor launch per group (core/cuda/optim_kernels.h).
#include "optim/optimizer.h"

namespace attnlab {

struct SGDOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  DecayFilter decay_filter = default_decay_filter;  // NamedVars constructor only
};

class SGD : public Optimizer {
 public:
  SGD(const NamedVars& params, const SGDOptions& options = {});
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);
  const SGDOptions& options() const { return opt_; }

 protected:
  void update(Slot& slot, double lr) override;
  void update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable& table, const Tensor& words,
                     double lr) override;

 private:
  SGDOptions opt_;
};

}  // namespace attnlab
