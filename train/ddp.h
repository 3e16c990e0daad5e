#pragma once
// Data-parallel training (DDP): one process per device, each with a full model
// replica and its own slice of every batch (data/loader.h shards by rank). The
// trainer drives a step through this class:
//
//   for each micro-step: prepare_backward(last); loss.backward();
//   finish_backward();            // gradients = mean over ranks
//   clip_grad_norm(max); step(); zero_grad();
//
// Gradients are bucketed and sent during backward (train/ddp_reducer.h). With
// ZeRO-1 the optimizer state is sharded (optim/zero.h). With one process and no
// ZeRO this is the plain optimizer, untouched.
#include <memory>

#include "core/comm/communicator.h"
#include "optim/optimizer.h"
#include "optim/zero.h"
#include "train/ddp_reducer.h"

namespace attnlab {

struct DataParallelOptions {
  double bucket_mb = 25;  // gradient bucket size, MiB
  bool zero1 = false;     // shard the optimizer state (ZeRO stage 1)
};

class DataParallel {
 public:
  // `params`: the model's, in registration order; `groups`: the same parameters
  // grouped for the optimizer that `make` builds. Broadcasts rank 0's parameter
  // values, so every rank starts from identical weights.
  DataParallel(std::shared_ptr<Communicator> comm, const NamedVars& params, const std::vector<ParamGroup>& groups,
               const OptimizerFactory& make, const DataParallelOptions& options);

  Communicator& comm() const { return *comm_; }
  int rank() const { return comm_->rank(); }
  int world_size() const { return comm_->size(); }

  // Before each micro-step's backward: only the last one communicates.
  void prepare_backward(bool last_micro_step);
  // After the last backward: waits until the gradients are reduced.
  void finish_backward();
  // The global gradient norm, clipped to max_norm when max_norm > 0.
  double clip_grad_norm(double max_norm);
  void step();
  void zero_grad();
  void set_lr(double lr);
  int64_t step_count() const;

  // The full optimizer state (gathered from the shards under ZeRO-1: a
  // collective, call it on every rank).
  Optimizer::State optimizer_state() const;
  void load_optimizer_state(const Optimizer::State& state, int64_t step_count);

  // Null for one process without ZeRO.
  const GradReducer* reducer() const { return reducer_.get(); }
  const Zero1Optimizer* zero() const { return zero_.get(); }

 private:
  std::shared_ptr<Communicator> comm_;
  std::vector<Var> params_;
  std::unique_ptr<GradReducer> reducer_;
  std::unique_ptr<Optimizer> optim_;     // without ZeRO
  std::unique_ptr<Zero1Optimizer> zero_;  // with ZeRO
};

}  // namespace attnlab
