#pragma once
// The MPI backend: CPU tensors, non-blocking collectives (MPI_Iallreduce, ...)
// waited on with a deadline. Built into attnlab_mpi only; linking that library
// registers it as the "mpi" backend of core/comm/world.h.
#include <mpi.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/comm/communicator.h"

namespace attnlab {

class MpiCommunicator : public Communicator {
 public:
  // Initialises MPI on first use (from the main thread) and finalizes it at exit.
  // The communicator is a duplicate of MPI_COMM_WORLD.
  static std::shared_ptr<MpiCommunicator> world();
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  bool supports(Device device) const override { return device.is_cpu(); }
  void barrier() override;
  [[noreturn]] void abort(const std::string& message) override;

  // This rank's index among the ranks on its node (for picking a GPU).
  int local_rank() const { return local_rank_; }
  MPI_Comm handle() const { return comm_; }

 protected:
  WorkPtr do_all_reduce(Tensor& t, ReduceOp op) override;
  WorkPtr do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) override;
  WorkPtr do_all_gather(const Tensor& in, Tensor& out) override;
  WorkPtr do_broadcast(Tensor& t, int root) override;

 private:
  explicit MpiCommunicator(MPI_Comm comm);
  // Runs `start` (which posts a request), then returns a Work that completes it.
  WorkPtr start(const char* op, const Tensor& t, ReduceOp op_kind,
                const std::function<int(MPI_Request*)>& post, std::vector<Tensor> keep);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace attnlab
