#include "core/comm/nccl/nccl_communicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/comm/mpi/mpi_communicator.h"
#include "core/comm/world.h"
#include "core/cuda/runtime.h"

namespace attnlab {

namespace {

using clock = std::chrono::steady_clock;

double seconds_since(clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); }

ncclDataType_t nccl_type(DType d, const char* op) {
  switch (d) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::i64: return ncclInt64;
    default: break;
  }
  throw Error(detail::cat(op, ": the nccl backend does not move ", dtype_name(d), " tensors"));
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::avg ? ncclAvg : ncclSum; }

}  // namespace

class NcclWork : public CommWork {
 public:
  NcclWork(NcclCommunicator* comm, cudaEvent_t done, std::string what, std::vector<Tensor> keep)
      : comm_(comm), done_(done), what_(std::move(what)), keep_(std::move(keep)) {}
  ~NcclWork() override {
    if (done_) {
      // Unfinished: the buffers may still be written; keep them.
      if (!keep_.empty()) new std::vector<Tensor>(std::move(keep_));
      cudaEventDestroy(done_);
    }
  }

  bool test() override {
    if (!done_) return true;
    cudaError_t e = cudaEventQuery(done_);
    if (e == cudaErrorNotReady) {
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_->comm_, &async);
      ATTNLAB_CHECK(async == ncclSuccess || async == ncclInProgress, what_, " failed: ", ncclGetErrorString(async));
      return false;
    }
    ATTNLAB_CUDA_CHECK(e);
    // Later work on the default stream reads the result.
    ATTNLAB_CUDA_CHECK(cudaStreamWaitEvent(0, done_, 0));
    cudaEventDestroy(done_);
    done_ = nullptr;
    keep_.clear();
    return true;
  }

  void wait() override {
    const auto start = clock::now();
    while (!test()) {
      if (comm_->timeout() > 0 && seconds_since(start) > comm_->timeout()) {
        ncclCommAbort(comm_->comm_);
        throw Error(detail::cat(what_, " timed out after ", comm_->timeout(),
                                " s (train.comm_timeout): another rank failed or stopped calling collectives"));
      }
      std::this_thread::yield();
    }
  }

 private:
  NcclCommunicator* comm_;
  cudaEvent_t done_;
  std::string what_;
  std::vector<Tensor> keep_;
};

NcclCommunicator::NcclCommunicator(int rank, int size, const ncclUniqueId& id, int device, double timeout_s,
                                   std::shared_ptr<Communicator> launcher)
    : rank_(rank), size_(size), device_(device), launcher_(std::move(launcher)) {
  set_timeout(timeout_s);
  cuda::DeviceGuard guard(device_);
  ATTNLAB_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  settle(ncclCommInitRankConfig(&comm_, size_, id, rank_, &config), detail::cat("ncclCommInitRankConfig (rank ", rank_, "/", size_, ")"));
}

NcclCommunicator::~NcclCommunicator() {
  if (comm_) {
    cudaSetDevice(device_);  // unchecked: a destructor must not throw (it may run at exit)
    // Flush what is queued, but never wait long on a peer that is gone.
    ncclResult_t state = ncclCommFinalize(comm_);
    const auto start = clock::now();
    while (state == ncclInProgress && seconds_since(start) < 10) ncclCommGetAsyncError(comm_, &state);
    if (state == ncclSuccess) ncclCommDestroy(comm_);
    else ncclCommAbort(comm_);
  }
  if (stream_) cudaStreamDestroy(stream_);
}

void NcclCommunicator::settle(ncclResult_t r, const std::string& what) {
  const auto start = clock::now();
  while (r == ncclInProgress) {
    if (timeout() > 0 && seconds_since(start) > timeout()) {
      if (comm_) ncclCommAbort(comm_);
      comm_ = nullptr;
      throw Error(detail::cat(what, " timed out after ", timeout(), " s (train.comm_timeout)"));
    }
    std::this_thread::yield();
    if (comm_) ncclCommGetAsyncError(comm_, &r);
  }
  ATTNLAB_CHECK(r == ncclSuccess, what, " failed: ", ncclGetErrorString(r));
}

WorkPtr NcclCommunicator::enqueue(const std::string& what, const std::function<ncclResult_t(cudaStream_t)>& launch,
                                  std::vector<Tensor> keep) {
  cuda::DeviceGuard guard(device_);
  cudaEvent_t ready, done;
  ATTNLAB_CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
  ATTNLAB_CUDA_CHECK(cudaEventRecord(ready, 0));
  ATTNLAB_CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
  cudaEventDestroy(ready);
  settle(launch(stream_), what);
  ATTNLAB_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  ATTNLAB_CUDA_CHECK(cudaEventRecord(done, stream_));
  return std::make_shared<NcclWork>(this, done, what, std::move(keep));
}

WorkPtr NcclCommunicator::do_all_reduce(Tensor& t, ReduceOp op) {
  ncclDataType_t type = nccl_type(t.dtype(), "all_reduce");
  void* p = t.raw_data();
  size_t n = static_cast<size_t>(t.numel());
  return enqueue(
      "all_reduce of " + t.str(),
      [&](cudaStream_t s) { return ncclAllReduce(p, p, n, type, nccl_op(op), comm_, s); }, {t});
}

WorkPtr NcclCommunicator::do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  ncclDataType_t type = nccl_type(in.dtype(), "reduce_scatter");
  const void* src = in.raw_data();
  void* dst = out.raw_data();
  size_t n = static_cast<size_t>(out.numel());
  return enqueue(
      "reduce_scatter of " + in.str(),
      [&](cudaStream_t s) { return ncclReduceScatter(src, dst, n, type, nccl_op(op), comm_, s); }, {in, out});
}

WorkPtr NcclCommunicator::do_all_gather(const Tensor& in, Tensor& out) {
  // Every element type moves as bytes; in place when `in` is block rank() of `out`.
  const void* src = in.raw_data();
  void* dst = out.raw_data();
  size_t n = in.nbytes();
  return enqueue(
      "all_gather of " + in.str(),
      [&](cudaStream_t s) { return ncclAllGather(src, dst, n, ncclUint8, comm_, s); }, {in, out});
}

WorkPtr NcclCommunicator::do_broadcast(Tensor& t, int root) {
  void* p = t.raw_data();
  size_t n = t.nbytes();
  return enqueue(
      "broadcast of " + t.str(),
      [&](cudaStream_t s) { return ncclBroadcast(p, p, n, ncclUint8, root, comm_, s); }, {t});
}

void NcclCommunicator::barrier() {
  Tensor t = Tensor::zeros({1}, DType::f32, device());
  all_reduce(t);
}

void NcclCommunicator::abort(const std::string& message) {
  if (comm_) ncclCommAbort(comm_);
  comm_ = nullptr;
  if (launcher_) launcher_->abort(message);
  Communicator::abort(message);
}

std::shared_ptr<Communicator> make_nccl_world(Device device) {
  std::shared_ptr<MpiCommunicator> mpi;
  int rank = 0, size = 1, local = 0;
  if (launched_world_size() > 1) {
    mpi = MpiCommunicator::world();
    rank = mpi->rank(), size = mpi->size(), local = mpi->local_rank();
  }
  int count = cuda_device_count();
  ATTNLAB_CHECK(count > 0, "train.dist = nccl: no CUDA device is visible to rank ", rank);
  int dev = size > 1 ? local % count : device.index;
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  if (rank == 0) {
    ncclResult_t r = ncclGetUniqueId(&id);
    ATTNLAB_CHECK(r == ncclSuccess, "ncclGetUniqueId failed: ", ncclGetErrorString(r));
  }
  if (mpi) {
    static_assert(sizeof(ncclUniqueId) % 2 == 0);
    Tensor bytes = Tensor::empty({static_cast<int64_t>(sizeof id / 2)}, DType::u16);
    std::memcpy(bytes.raw_data(), &id, sizeof id);
    mpi->broadcast(bytes, 0);
    std::memcpy(&id, bytes.raw_data(), sizeof id);
  }
  double timeout = mpi ? mpi->timeout() : 600;
  return std::make_shared<NcclCommunicator>(rank, size, id, dev, timeout, mpi);
}

namespace {
const bool registered = [] {
  register_comm_backend("nccl", make_nccl_world);
  return true;
}();
}  // namespace

}  // namespace attnlab
