#pragma once
// Collective communication among the ranks of a data-parallel job. Backends:
// single process (core/comm/single.h), MPI on CPU tensors (core/comm/mpi/),
// NCCL on CUDA tensors (core/comm/nccl/). Every collective is started
// asynchronously and returns a Work to wait on; the blocking forms wait at once.
//
// Rules shared by all backends: tensors are contiguous by construction; every
// rank calls the same collectives in the same order with the same sizes; the
// tensors stay alive and untouched until the Work completes; a wait that takes
// longer than timeout() throws attnlab::Error instead of hanging.
#include <memory>
#include <string>

#include "core/tensor.h"

namespace attnlab {

enum class ReduceOp { sum, avg };

// A collective in flight.
class CommWork {
 public:
  virtual ~CommWork() = default;
  // Non-blocking: true once the result is in place (also drives progress).
  virtual bool test() = 0;
  // Blocks until done; throws attnlab::Error on failure or timeout.
  virtual void wait() = 0;
};
using WorkPtr = std::shared_ptr<CommWork>;

// A Work that is complete from the start (single process, empty tensors).
class DoneWork : public CommWork {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;  // "single", "mpi", "nccl", ...
  // Whether this backend moves tensors on `device`.
  virtual bool supports(Device device) const = 0;
  // Where mean() and sum() stage their value when the CPU is not supported.
  virtual Device scalar_device() const { return Device::cpu(); }

  // t <- op over ranks of t, in place.
  WorkPtr all_reduce_async(Tensor& t, ReduceOp op = ReduceOp::sum);
  // in: size() * n elements; out (n elements) <- op over ranks of block rank() of in.
  WorkPtr reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::sum);
  // out: size() * n elements; block r of out <- rank r's in (n elements). `in` may be
  // block rank() of `out` itself (in place).
  WorkPtr all_gather_async(const Tensor& in, Tensor& out);
  // t <- root's t.
  WorkPtr broadcast_async(Tensor& t, int root = 0);

  void all_reduce(Tensor& t, ReduceOp op = ReduceOp::sum) { all_reduce_async(t, op)->wait(); }
  void reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op = ReduceOp::sum) {
    reduce_scatter_async(in, out, op)->wait();
  }
  void all_gather(const Tensor& in, Tensor& out) { all_gather_async(in, out)->wait(); }
  void broadcast(Tensor& t, int root = 0) { broadcast_async(t, root)->wait(); }
  virtual void barrier() = 0;

  // The mean over ranks of a host value (a loss, a count), in double.
  double mean(double value);
  double sum(double value);

  // Prints "attnlab: rank R/W: message" on stderr and ends every rank of the
  // job with a non-zero status. The default (one process) just exits.
  [[noreturn]] virtual void abort(const std::string& message);

  // Seconds a wait may take before it fails; <= 0 waits forever.
  double timeout() const { return timeout_s_; }
  void set_timeout(double seconds) { timeout_s_ = seconds; }

 protected:
  Communicator() = default;
  // Called with arguments already validated (devices, dtypes, sizes).
  virtual WorkPtr do_all_reduce(Tensor& t, ReduceOp op) = 0;
  virtual WorkPtr do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) = 0;
  virtual WorkPtr do_all_gather(const Tensor& in, Tensor& out) = 0;
  virtual WorkPtr do_broadcast(Tensor& t, int root) = 0;
  // "rank 1/2 (mpi)": how errors name this process.
  std::string who() const;

 private:
  void check_tensor(const char* op, const Tensor& t) const;
  double timeout_s_ = 600;
};

// True when `in` is block rank() of `out`: the in-place form of all_gather.
bool is_block_of(const Tensor& in, const Tensor& out, int block);

}  // namespace attnlab
