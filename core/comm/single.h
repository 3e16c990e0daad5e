#pragma once
// The communicator of a job with one process: every collective is the identity
// (or a copy), on any device.
#include "core/comm/communicator.h"

namespace attnlab {

class SingleCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "single"; }
  bool supports(Device) const override { return true; }
  void barrier() override {}

 protected:
  WorkPtr do_all_reduce(Tensor& t, ReduceOp op) override;
  WorkPtr do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  WorkPtr do_all_gather(const Tensor& in, Tensor& out) override;
  WorkPtr do_broadcast(Tensor& t, int root) override;
};

}  // namespace attnlab
