#include "core/comm/communicator.h"

#include <cstdio>
#include <cstdlib>

namespace attnlab {

void Communicator::check_tensor(const char* op, const Tensor& t) const {
  ATTNLAB_CHECK(t.defined(), op, ": undefined tensor");
  ATTNLAB_CHECK(supports(t.device()), op, ": the ", backend(), " backend does not move ", t.device().str(),
                " tensors (", t.str(), "); set train.dist to a backend for that device");
}

std::string Communicator::who() const {
  return detail::cat("rank ", rank(), "/", size(), " (", backend(), ")");
}

WorkPtr Communicator::all_reduce_async(Tensor& t, ReduceOp op) {
  check_tensor("all_reduce", t);
  if (t.numel() == 0) return std::make_shared<DoneWork>();
  return do_all_reduce(t, op);
}

WorkPtr Communicator::reduce_scatter_async(const Tensor& in, Tensor& out, ReduceOp op) {
  check_tensor("reduce_scatter", in);
  check_tensor("reduce_scatter", out);
  ATTNLAB_CHECK(in.dtype() == out.dtype() && in.device() == out.device(), "reduce_scatter: input ", in.str(),
                " and output ", out.str(), " differ in dtype or device");
  ATTNLAB_CHECK(in.numel() == out.numel() * size(), "reduce_scatter: input ", in.str(), " must hold ", size(),
                " blocks of the output's ", out.numel(), " elements");
  ATTNLAB_CHECK(!in.shares_storage(out), "reduce_scatter: input and output share memory (", in.str(), ")");
  if (out.numel() == 0) return std::make_shared<DoneWork>();
  return do_reduce_scatter(in, out, op);
}

WorkPtr Communicator::all_gather_async(const Tensor& in, Tensor& out) {
  check_tensor("all_gather", in);
  check_tensor("all_gather", out);
  ATTNLAB_CHECK(in.dtype() == out.dtype() && in.device() == out.device(), "all_gather: input ", in.str(),
                " and output ", out.str(), " differ in dtype or device");
  ATTNLAB_CHECK(out.numel() == in.numel() * size(), "all_gather: output ", out.str(), " must hold ", size(),
                " blocks of the input's ", in.numel(), " elements");
  ATTNLAB_CHECK(!in.shares_storage(out) || is_block_of(in, out, rank()), "all_gather: the input ", in.str(),
                " overlaps the output but is not block ", rank(), " of it");
  if (in.numel() == 0) return std::make_shared<DoneWork>();
  return do_all_gather(in, out);
}

WorkPtr Communicator::broadcast_async(Tensor& t, int root) {
  check_tensor("broadcast", t);
  ATTNLAB_CHECK(root >= 0 && root < size(), "broadcast: root ", root, " is not a rank of ", size());
  if (t.numel() == 0) return std::make_shared<DoneWork>();
  return do_broadcast(t, root);
}

double Communicator::sum(double value) {
  if (size() == 1) return value;
  Tensor t = Tensor::from(std::vector<double>{value});
  if (!supports(t.device())) t = t.to(scalar_device());
  all_reduce(t, ReduceOp::sum);
  return t.item<double>();
}

double Communicator::mean(double value) { return size() == 1 ? value : sum(value) / size(); }

void Communicator::abort(const std::string& message) {
  std::fprintf(stderr, "attnlab: %s: %s\n", who().c_str(), message.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

bool is_block_of(const Tensor& in, const Tensor& out, int block) {
  return in.shares_storage(out) && in.dtype() == out.dtype() &&
         in.offset() == out.offset() + static_cast<int64_t>(block) * in.numel();
}

}  // namespace attnlab
