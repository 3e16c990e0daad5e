#include "core/comm/mpi/mpi_communicator.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/comm/world.h"

namespace attnlab {

namespace {

std::string mpi_message(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, buf, &len);
  return std::string(buf, static_cast<size_t>(len));
}

#define ATTNLAB_MPI_CHECK(call, ...)                                                                   \
  do {                                                                                               \
    int attnlab_mpi_rc_ = (call);                                                                    \
    ATTNLAB_CHECK(attnlab_mpi_rc_ == MPI_SUCCESS, __VA_ARGS__, ": ", #call, " failed: ",            \
                  mpi_message(attnlab_mpi_rc_));                                                     \
  } while (0)

MPI_Datatype mpi_type(DType d, bool reduce, const char* op) {
  switch (d) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::i32: return MPI_INT32_T;
    case DType::i64: return MPI_INT64_T;
    case DType::u16: return MPI_UINT16_T;
    case DType::bf16:
      ATTNLAB_CHECK(!reduce, op, ": MPI cannot add bf16 values; reduce in f32 or use the nccl backend");
      return MPI_UINT16_T;  // moved as raw bits
  }
  throw Error(detail::cat(op, ": unsupported dtype ", dtype_name(d)));
}

// avg = sum, then a division in place (MPI has no average).
void divide(Tensor& t, int n) {
  if (t.dtype() == DType::f32) {
    float* p = t.data<float>();
    const float s = 1.0f / static_cast<float>(n);
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s;
  } else {
    double* p = t.data<double>();
    const double s = 1.0 / n;
    for (int64_t i = 0; i < t.numel(); ++i) p[i] *= s;
  }
}

class MpiWork : public CommWork {
 public:
  MpiWork(MPI_Request req, std::string what, double timeout, std::function<void()> then, std::vector<Tensor> keep)
      : req_(req), what_(std::move(what)), timeout_(timeout), then_(std::move(then)), keep_(std::move(keep)) {}
  ~MpiWork() override {
    // An abandoned collective (an exception unwound past it) cannot be freed or
    // cancelled in MPI, and may still write to its buffers: keep them alive.
    if (req_ != MPI_REQUEST_NULL && !keep_.empty()) new std::vector<Tensor>(std::move(keep_));
  }

  bool test() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int flag = 0;
    ATTNLAB_MPI_CHECK(MPI_Test(&req_, &flag, MPI_STATUS_IGNORE), what_);
    if (flag) finish();
    return flag != 0;
  }

  void wait() override {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    while (!test()) {
      double waited = std::chrono::duration<double>(clock::now() - start).count();
      ATTNLAB_CHECK(timeout_ <= 0 || waited < timeout_, what_, " timed out after ", timeout_,
                    " s (train.comm_timeout): another rank failed or stopped calling collectives");
      if (waited > 1e-3) std::this_thread::yield();
    }
  }

 private:
  void finish() {
    req_ = MPI_REQUEST_NULL;
    if (then_) then_();
    then_ = nullptr;
    keep_.clear();
  }

  MPI_Request req_;
  std::string what_;
  double timeout_;
  std::function<void()> then_;
  std::vector<Tensor> keep_;  // the buffers MPI reads and writes, alive until done
};

void finalize_mpi() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

const bool registered = [] {
  register_comm_backend("mpi", [](Device) -> std::shared_ptr<Communicator> { return MpiCommunicator::world(); });
  return true;
}();

}  // namespace

std::shared_ptr<MpiCommunicator> MpiCommunicator::world() {
  static std::weak_ptr<MpiCommunicator> made;
  if (auto w = made.lock()) return w;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    ATTNLAB_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI");
    std::atexit(finalize_mpi);
  }
  MPI_Comm comm;
  ATTNLAB_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI");
  auto w = std::shared_ptr<MpiCommunicator>(new MpiCommunicator(comm));
  made = w;
  return w;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : comm_(comm) {
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  MPI_Comm node;
  ATTNLAB_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "MPI");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

WorkPtr MpiCommunicator::start(const char* op, const Tensor& t, ReduceOp op_kind,
                               const std::function<int(MPI_Request*)>& post, std::vector<Tensor> keep) {
  std::string what = detail::cat(op, " of ", t.str());
  MPI_Request req = MPI_REQUEST_NULL;
  ATTNLAB_MPI_CHECK(post(&req), what);
  std::function<void()> then;
  if (op_kind == ReduceOp::avg && size_ > 1) {
    Tensor result = keep.back();  // by convention the output is kept last
    int n = size_;
    then = [result, n]() mutable { divide(result, n); };
  }
  return std::make_shared<MpiWork>(req, std::move(what), timeout(), std::move(then), std::move(keep));
}

namespace {
void check_avg(const char* op, const Tensor& t, ReduceOp r) {
  ATTNLAB_CHECK(r != ReduceOp::avg || t.dtype() == DType::f32 || t.dtype() == DType::f64, op,
                ": avg needs f32 or f64, got ", t.str());
}
}  // namespace

WorkPtr MpiCommunicator::do_all_reduce(Tensor& t, ReduceOp op) {
  check_avg("all_reduce", t, op);
  MPI_Datatype type = mpi_type(t.dtype(), true, "all_reduce");
  void* p = t.raw_data();
  int n = static_cast<int>(t.numel());
  ATTNLAB_CHECK(t.numel() < (int64_t{1} << 31), "all_reduce: ", t.str(), " exceeds MPI's int count");
  return start("all_reduce", t, op,
               [&](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, p, n, type, MPI_SUM, comm_, r); }, {t});
}

WorkPtr MpiCommunicator::do_reduce_scatter(const Tensor& in, Tensor& out, ReduceOp op) {
  check_avg("reduce_scatter", in, op);
  MPI_Datatype type = mpi_type(in.dtype(), true, "reduce_scatter");
  ATTNLAB_CHECK(in.numel() < (int64_t{1} << 31), "reduce_scatter: ", in.str(), " exceeds MPI's int count");
  const void* src = in.raw_data();
  void* dst = out.raw_data();
  int n = static_cast<int>(out.numel());
  return start("reduce_scatter", in, op,
               [&](MPI_Request* r) { return MPI_Ireduce_scatter_block(src, dst, n, type, MPI_SUM, comm_, r); },
               {in, out});
}

WorkPtr MpiCommunicator::do_all_gather(const Tensor& in, Tensor& out) {
  MPI_Datatype type = mpi_type(in.dtype(), false, "all_gather");
  ATTNLAB_CHECK(out.numel() < (int64_t{1} << 31), "all_gather: ", out.str(), " exceeds MPI's int count");
  const void* src = is_block_of(in, out, rank_) ? MPI_IN_PLACE : in.raw_data();
  void* dst = out.raw_data();
  int n = static_cast<int>(in.numel());
  return start("all_gather", out, ReduceOp::sum,
               [&](MPI_Request* r) { return MPI_Iallgather(src, n, type, dst, n, type, comm_, r); }, {in, out});
}

WorkPtr MpiCommunicator::do_broadcast(Tensor& t, int root) {
  MPI_Datatype type = mpi_type(t.dtype(), false, "broadcast");
  ATTNLAB_CHECK(t.numel() < (int64_t{1} << 31), "broadcast: ", t.str(), " exceeds MPI's int count");
  void* p = t.raw_data();
  int n = static_cast<int>(t.numel());
  return start("broadcast", t, ReduceOp::sum, [&](MPI_Request* r) { return MPI_Ibcast(p, n, type, root, comm_, r); },
               {t});
}

void MpiCommunicator::barrier() {
  MPI_Request req = MPI_REQUEST_NULL;
  std::string what = "barrier";
  ATTNLAB_MPI_CHECK(MPI_Ibarrier(comm_, &req), what);
  MpiWork(req, what, timeout(), nullptr, {}).wait();
}

void MpiCommunicator::abort(const std::string& message) {
  std::fprintf(stderr, "attnlab: %s: %s\n", who().c_str(), message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

}  // namespace attnlab
