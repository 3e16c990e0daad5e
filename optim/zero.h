#pragma once
// ZeRO stage 1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training
// Trillion Parameter Models"): each rank keeps the optimizer state of its block
// of every gradient bucket only. Per step: the gradients are reduce-scattered
// into this rank's shard (train/ddp_reducer.h), the wrapped optimizer updates the
// shard of the parameters, and the parameters are all-gathered back.
//
// The parameters become views into one flat buffer with the buckets' layout, and
// the wrapped optimizer runs on 1-D Vars that view this rank's part of each
// parameter (named like the parameter), so any Optimizer works unchanged. The
// full state (gathered) is the plain optimizer's: a checkpoint of a ZeRO-1 run
// resumes at any world size, with or without ZeRO.
#include <functional>
#include <memory>

#include "core/comm/buckets.h"
#include "core/comm/communicator.h"
#include "optim/optimizer.h"

namespace attnlab {

using OptimizerFactory = std::function<std::unique_ptr<Optimizer>(std::vector<ParamGroup>)>;

class Zero1Optimizer {
 public:
  // `params[i]` sits at layout.slots[i]; `groups` holds the same parameters with
  // their weight decay and lr scale; `shard_grads` is this rank's block of the
  // reduced gradients, bucket after bucket (layout.shard_total elements).
  Zero1Optimizer(std::shared_ptr<Communicator> comm, const NamedVars& params, const std::vector<ParamGroup>& groups,
                 const BucketLayout& layout, Tensor shard_grads, const OptimizerFactory& make);

  // Updates this rank's shard, then all-gathers the parameters.
  void step();
  // The global gradient norm, from the shards (collective).
  double grad_norm() const;
  // Scales the shards like clip_grad_norm (optim/clip.h) does full gradients;
  // returns the norm before clipping (collective).
  double clip_grad_norm(double max_norm);
  void zero_grad();

  double lr() const { return local_->lr(); }
  void set_lr(double lr) { local_->set_lr(lr); }
  int64_t step_count() const { return local_->step_count(); }
  // The optimizer over this rank's shard (state tensors are 1-D blocks).
  const Optimizer& local() const { return *local_; }

  // The state of every parameter in full shapes, as the plain optimizer keeps it
  // (collective: every rank gets it).
  Optimizer::State full_state() const;
  // Takes this rank's part of a full state (any world size wrote it).
  void load_full_state(const Optimizer::State& state, int64_t step_count);

 private:
  struct Part {
    int param;       // index into params_
    int64_t lo, hi;  // [lo, hi) of the flat buffer
  };
  void all_gather_buckets(Tensor& flat) const;

  std::shared_ptr<Communicator> comm_;
  NamedVars params_;
  BucketLayout layout_;
  Tensor flat_params_, shard_grads_;
  std::vector<Part> parts_;
  std::vector<Var> shard_vars_;
  std::unique_ptr<Optimizer> local_;
};

}  // namespace attnlab
