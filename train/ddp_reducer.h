#pragma once
// Gradient bucketing for data parallelism. Every parameter's gradient becomes a
// view into one flat buffer laid out in buckets (core/comm/buckets.h), in the
// reverse of the parameters' order: the order backward completes them. A
// grad-ready hook counts each bucket down during backward, and a bucket whose
// gradients are all in is sent at once (all-reduce, or reduce-scatter into this
// rank's shard for ZeRO-1) while backward goes on with the layers below. Buckets
// are started strictly in order, so every rank issues the same collectives in
// the same sequence.
#include <memory>
#include <vector>

#include "autograd/var.h"
#include "core/comm/buckets.h"
#include "core/comm/communicator.h"

namespace attnlab {

class GradReducer {
 public:
  enum class Mode { all_reduce, reduce_scatter };

  // `params` in registration order; all share a dtype and device.
  GradReducer(std::shared_ptr<Communicator> comm, const std::vector<Var>& params, int64_t bucket_elems, Mode mode);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Whether the next backward communicates. Gradient accumulation turns it off
  // for every micro-step but the last, whose backward carries the sum.
  void set_sync(bool on);
  // After the last backward of a step: starts the buckets no hook completed
  // (parameters this backward did not reach) and waits for every bucket. The
  // gradients then hold the mean over ranks (all_reduce), or shard_grads() holds
  // this rank's block of it (reduce_scatter).
  void finish();

  const BucketLayout& layout() const { return layout_; }
  // The layout index of parameter i is i; the flat buffers hold every gradient.
  const Tensor& flat_grads() const { return flat_; }
  // reduce_scatter: this rank's block of every bucket, bucket after bucket.
  const Tensor& shard_grads() const { return shard_; }
  // Buckets started so far in the current backward.
  int launched() const;

 private:
  struct State;
  std::shared_ptr<State> state_;  // shared with the hooks, which outlive nothing: they hold it weakly
  BucketLayout layout_;
  Tensor flat_, shard_;
};

}  // namespace attnlab
