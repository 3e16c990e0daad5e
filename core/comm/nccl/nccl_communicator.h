#pragma once
// The NCCL backend: CUDA tensors of one device per rank. Collectives run on a
// communication stream of their own, ordered after the work already queued on
// the default stream, so they overlap with compute queued after them; a wait
// polls for completion with a deadline and aborts the NCCL communicator on
// timeout (the communicator is created non-blocking so that abort can interrupt it).
#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/comm/communicator.h"

namespace attnlab {

class NcclCommunicator : public Communicator {
 public:
  // `id` is the same on every rank (rank 0 makes it with ncclGetUniqueId and the
  // launcher shares it); `launcher` (may be null) ends the job on abort.
  NcclCommunicator(int rank, int size, const ncclUniqueId& id, int device, double timeout_s,
                   std::shared_ptr<Communicator> launcher);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "nccl"; }
  bool supports(Device d) const override { return d.is_cuda() && d.index == device_; }
  Device scalar_device() const override { return Device::cuda(device_); }
  void barrier() override;
  [[noreturn]] void abort(const std::string& message) override;

  Device device() const { return Device::cuda(device_); }

 protected:
  WorkPtr do_all_reduce(Tensor& t, ReduceOp op) override;
  WorkPtr do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  WorkPtr do_all_gather(const Tensor& in, Tensor& out) override;
  WorkPtr do_broadcast(Tensor& t, int root) override;

 private:
  // Orders the comm stream after the default stream, runs `launch` on it and
  // returns a Work that completes when the stream passes that point.
  WorkPtr enqueue(const std::string& what, const std::function<ncclResult_t(cudaStream_t)>& launch,
                  std::vector<Tensor> keep);
  // Polls a non-blocking NCCL call to completion, with the deadline.
  void settle(ncclResult_t r, const std::string& what);

  int rank_, size_, device_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<Communicator> launcher_;
  friend class NcclWork;
};

// The NCCL world of this process: with several processes their rank, size and
// node-local rank come from MPI, which also carries the unique id; each rank
// uses GPU (local rank mod device count). One process needs no MPI.
std::shared_ptr<Communicator> make_nccl_world(Device device);

}  // namespace attnlab
