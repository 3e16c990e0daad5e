#pragma once
// The optimizer interface. Every optimizer keeps, per parameter, a few named
// state tensors ("exp_avg", "momentum_buffer", ...) plus one step count, so
// checkpointing and sharding code handle any optimizer the same way.
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"
#include "core/cuda/multi_tensor.h"
#include "optim/device_table.h"

namespace attnlab {

using NamedVars = std::vector<std::pair<std::string, Var>>;

struct ParamGroup {
  NamedVars params;
  double weight_decay = 0.0;
  double lr_scale = 1.0;  // the group's learning rate is lr() * lr_scale
};

// True when a parameter gets weight decay.
using DecayFilter = std::function<bool(const std::string& name, const Var& param)>;
// Decays matrices only: not 1-D parameters (norm weights, biases), and not
// embedding tables (a last-but-one path component wte, wpe, or containing "emb").
bool default_decay_filter(const std::string& name, const Var& param);
// Two groups, in the parameters' order: {decayed, weight_decay} and {rest, 0};
// an empty group is left out.
std::vector<ParamGroup> make_param_groups(const NamedVars& params, double weight_decay,
                                          const DecayFilter& decay = default_decay_filter);

class Optimizer {
 public:
  // parameter name -> state name -> tensor
  using State = std::map<std::string, std::map<std::string, Tensor>>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient, then counts the step. CPU
  // parameters are updated one by one; the CUDA parameters of a group (per
  // device and dtype) all in one multi-tensor launch (update_device).
  void step();
  // Zeros every parameter's gradient in place (gradient accumulation adds
  // micro-batches into .grad; call this once per optimizer step).
  void zero_grad();

  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t step_count() const { return step_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  const std::vector<std::string>& state_names() const { return state_names_; }

  // Handles to the live state tensors (no copy).
  State state() const;
  // Copies `state` into the live buffers (converting dtype) and sets the step
  // count. Throws attnlab::Error on a missing or unexpected parameter or state
  // name, or a shape mismatch, before anything changes.
  void load_state(const State& state, int64_t step_count);

 protected:
  struct Slot {
    std::string name;
    Var param;
    double weight_decay;
    double lr_scale;
    std::vector<Tensor> buffers;  // one per state name, shaped like the parameter
    size_t group = 0;             // index into param_groups()
  };
  // `state_names`: the per-parameter tensors this optimizer keeps (zero-initialised).
  Optimizer(const char* kind, std::vector<ParamGroup> groups, double lr, std::vector<std::string> state_names);
  // One parameter's update; step_count() already counts this step (1 on the first).
  virtual void update(Slot& slot, double lr) = 0;
  // The update of several CUDA parameters of one group, device and dtype at
  // once. `table` rows are {param, grad, buffers...} of `slots` in order (width
  // 2 + state_names().size()); `words` is its copy on the device, cached while
  // the rows are unchanged. The default throws: the optimizer is CPU-only.
  virtual void update_device(const std::vector<Slot*>& slots, const cuda::MultiTensorTable& table,
                             const Tensor& words, double lr);

  const char* kind_;

 private:
  std::vector<ParamGroup> groups_;
  std::vector<std::string> state_names_;
  std::vector<Slot> slots_;
  std::vector<DeviceTableCache> device_tables_;  // one per device batch, in step order
  double lr_;
  int64_t step_ = 0;
};

}  // namespace attnlab
