// The MPI backend with 2 (or more) ranks: every collective against values
// each rank can compute alone, many in flight at once, and the failure paths
// (run by their own ctest entries: a failing rank must end the job with its
// message, a missing rank must time out, neither may hang).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/comm/world.h"
#include "test_util.h"

using namespace attnlab;

namespace {

std::shared_ptr<Communicator> world2() {
  auto w = current_world();
  return w && w->size() >= 2 ? w : nullptr;
}

#define NEED_TWO_RANKS(c)                                                      \
  auto c = world2();                                                           \
  if (!c) GTEST_SKIP() << "needs mpirun -np 2 (ctest runs it that way)"

}  // namespace

TEST(MpiComm, AllReduceSumAndAverage) {
  NEED_TWO_RANKS(c);
  const int r = c->rank(), w = c->size();
  const double tri = w * (w + 1) / 2.0;
  Tensor f = Tensor::from(std::vector<float>{float(r + 1), 10.0f * (r + 1), -float(r)});
  c->all_reduce(f);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{float(tri), float(10 * tri), -float(tri - w)}));
  Tensor d = Tensor::from(std::vector<double>{double(r + 1), 0.5});
  c->all_reduce(d, ReduceOp::avg);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{tri / w, 0.5}));
  Tensor i = Tensor::from(std::vector<int64_t>{int64_t(1) << (40 + r)});
  c->all_reduce(i);
  int64_t expect = 0;
  for (int k = 0; k < w; ++k) expect += int64_t(1) << (40 + k);
  EXPECT_EQ(i.item<int64_t>(), expect);
  EXPECT_DOUBLE_EQ(c->sum(r + 1.0), tri);
  EXPECT_DOUBLE_EQ(c->mean(r + 1.0), tri / w);
}

TEST(MpiComm, ReduceScatterAllGatherBroadcast) {
  NEED_TWO_RANKS(c);
  const int r = c->rank(), w = c->size();
  const int64_t n = 5;
  std::vector<float> in(static_cast<size_t>(n * w));
  for (size_t k = 0; k < in.size(); ++k) in[k] = float(k) * (r + 1);
  Tensor out = Tensor::zeros({n});
  c->reduce_scatter(Tensor::from(in), out, ReduceOp::sum);
  const float scale = w * (w + 1) / 2.0f;
  for (int64_t k = 0; k < n; ++k) EXPECT_EQ(out.to_vector<float>()[size_t(k)], float(r * n + k) * scale);

  Tensor mine = Tensor::from(std::vector<double>{double(r), double(r) + 0.25});
  Tensor all = Tensor::zeros({2 * w}, DType::f64);
  c->all_gather(mine, all);
  for (int k = 0; k < w; ++k) {
    EXPECT_EQ(all.to_vector<double>()[size_t(2 * k)], k);
    EXPECT_EQ(all.to_vector<double>()[size_t(2 * k + 1)], k + 0.25);
  }
  // In place: each rank fills its own block of the output first.
  Tensor buf = Tensor::zeros({3 * w}, DType::i32);
  Tensor block = buf.slice(3 * r, 3 * r + 3);
  block.fill_(r + 7);
  c->all_gather(block, buf);
  for (int k = 0; k < 3 * w; ++k) EXPECT_EQ(buf.to_vector<int32_t>()[size_t(k)], k / 3 + 7);

  Tensor b = Tensor::full({4}, r == 1 ? 3.5 : -1.0);
  c->broadcast(b, 1);
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(4, 3.5f));
  Tensor bf = Tensor::full({3}, r == 0 ? 1.5 : 0.0, DType::bf16);
  c->broadcast(bf, 0);  // moved as bits
  EXPECT_EQ(bf.to(DType::f32).to_vector<float>(), std::vector<float>(3, 1.5f));
  c->barrier();
}

TEST(MpiComm, ManyInFlightCompleteInAnyWaitOrder) {
  NEED_TWO_RANKS(c);
  const int r = c->rank(), w = c->size();
  std::vector<Tensor> ts;
  std::vector<WorkPtr> works;
  for (int k = 0; k < 24; ++k) {
    ts.push_back(Tensor::full({int64_t(1) << (k % 12)}, double(r + k)));
    works.push_back(c->all_reduce_async(ts.back(), ReduceOp::avg));
  }
  for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();
  for (int k = 0; k < 24; ++k) {
    float expect = float(k) + float(w - 1) / 2;
    for (float v : ts[size_t(k)].to_vector<float>()) ASSERT_EQ(v, expect) << "tensor " << k;
  }
}

TEST(MpiComm, BadInputIsAnErrorOnEveryRank) {
  NEED_TWO_RANKS(c);
  Tensor bf = Tensor::zeros({2}, DType::bf16);
  EXPECT_ERROR_MENTIONS(c->all_reduce(bf), "all_reduce", "bf16");
  Tensor ints = Tensor::zeros({2}, DType::i32);
  EXPECT_ERROR_MENTIONS(c->all_reduce(ints, ReduceOp::avg), "all_reduce", "avg needs f32 or f64");
  Tensor in = Tensor::zeros({3}), out = Tensor::zeros({2});
  EXPECT_ERROR_MENTIONS(c->reduce_scatter(in, out), "reduce_scatter", "2 blocks");
  EXPECT_EQ(c->backend(), "mpi");
  EXPECT_FALSE(c->supports(Device::cuda()));
  c->barrier();  // nothing was left half-started: the ranks still agree
}

// Run only by the ctest entries mpi_2ranks_abort and mpi_2ranks_timeout, which
// pass when the job ends with the expected message.
TEST(MpiFailure, ARankThatFailsEndsTheJob) {
  const char* mode = std::getenv("ATTNLAB_TEST_FAILURE");
  if (!mode) GTEST_SKIP() << "ends the job on purpose; ctest runs it as mpi_2ranks_abort / _timeout";
  NEED_TWO_RANKS(c);
  try {
    if (std::string(mode) == "abort") {
      if (c->rank() == 1) throw Error("boom on rank 1");
      c->barrier();  // rank 0 waits for a peer that will never come
    } else {
      c->set_timeout(1);
      if (c->rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(30));
      else c->barrier();
    }
  } catch (const Error& e) {
    abort_job_if_distributed(e.what());
  }
  ADD_FAILURE() << "the job should have ended";
}
