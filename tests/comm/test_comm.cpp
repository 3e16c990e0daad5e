// Communicator pieces that need no MPI: the single-process backend, argument
// checks shared by every backend, bucket layouts, and picking the backend.
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>

#include "core/comm/buckets.h"
#include "core/comm/single.h"
#include "core/comm/world.h"
#include "test_util.h"

using namespace attnlab;

namespace {

// Rank 1 of a pretend world of 3 whose collectives do nothing: enough for the
// argument checks every backend shares.
class ThreeRanks : public Communicator {
 public:
  int rank() const override { return 1; }
  int size() const override { return 3; }
  std::string backend() const override { return "three"; }
  bool supports(Device) const override { return true; }
  void barrier() override {}

 protected:
  WorkPtr do_all_reduce(Tensor&, ReduceOp) override { return std::make_shared<DoneWork>(); }
  WorkPtr do_reduce_scatter(const Tensor&, Tensor&, ReduceOp) override { return std::make_shared<DoneWork>(); }
  WorkPtr do_all_gather(const Tensor&, Tensor&) override { return std::make_shared<DoneWork>(); }
  WorkPtr do_broadcast(Tensor&, int) override { return std::make_shared<DoneWork>(); }
};

// Sets (or, with nullptr, removes) an environment variable for one scope.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~EnvVar() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

}  // namespace

TEST(SingleCommunicator, CollectivesAreTheIdentity) {
  SingleCommunicator c;
  EXPECT_EQ(c.rank(), 0);
  EXPECT_EQ(c.size(), 1);
  Tensor t = Tensor::from(std::vector<float>{1, 2, 3});
  c.all_reduce(t, ReduceOp::avg);
  c.broadcast(t);
  c.barrier();
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  Tensor out = Tensor::zeros({3});
  c.reduce_scatter(t, out);
  EXPECT_EQ(out.to_vector<float>(), t.to_vector<float>());
  Tensor gathered = Tensor::zeros({3});
  c.all_gather(t, gathered);
  EXPECT_EQ(gathered.to_vector<float>(), t.to_vector<float>());
  c.all_gather(gathered, gathered);  // in place
  EXPECT_EQ(gathered.to_vector<float>(), t.to_vector<float>());
  EXPECT_EQ(c.mean(2.5), 2.5);
  EXPECT_EQ(c.sum(2.5), 2.5);
}

TEST(Communicator, ChecksSizesAndRoots) {
  ThreeRanks c;
  Tensor six = Tensor::zeros({6}), two = Tensor::zeros({2}), four = Tensor::zeros({4});
  EXPECT_ERROR_MENTIONS(c.reduce_scatter(six, four), "reduce_scatter", "3 blocks", "4 elements");
  EXPECT_ERROR_MENTIONS(c.all_gather(four, six), "all_gather", "3 blocks", "4 elements");
  EXPECT_ERROR_MENTIONS(c.broadcast(two, 3), "broadcast", "root 3");
  Tensor d = Tensor::zeros({2}, DType::f64);
  EXPECT_ERROR_MENTIONS(c.reduce_scatter(six, d), "reduce_scatter", "dtype");
  EXPECT_ERROR_MENTIONS(c.reduce_scatter(six, six), "reduce_scatter", "3 blocks");
  Tensor block0 = six.slice(0, 2);
  EXPECT_ERROR_MENTIONS(c.all_gather(block0, six), "all_gather", "not block 1");
  Tensor block1 = six.slice(2, 4);
  EXPECT_NO_THROW(c.all_gather(block1, six));
  Tensor undefined;
  EXPECT_ERROR_MENTIONS(c.all_reduce(undefined), "all_reduce", "undefined");
}

TEST(BucketLayout, ReverseOrderPaddedToTheWorld) {
  std::vector<int64_t> numels{10, 3, 7, 100, 1};
  std::vector<int> order(numels.size());
  std::iota(order.rbegin(), order.rend(), 0);
  for (int world : {1, 2, 3, 4}) {
    BucketLayout L = plan_buckets(numels, order, 8, world);
    // 1+100 | 7+3 | 10: a bucket closes once it holds >= 8 elements.
    ASSERT_EQ(L.buckets.size(), 3u) << world;
    EXPECT_EQ(L.buckets[0].members, (std::vector<int>{4, 3}));
    EXPECT_EQ(L.buckets[1].members, (std::vector<int>{2, 1}));
    EXPECT_EQ(L.buckets[2].members, (std::vector<int>{0}));
    int64_t offset = 0, shard = 0;
    for (const auto& b : L.buckets) {
      EXPECT_EQ(b.offset, offset);
      EXPECT_EQ(b.size % world, 0);
      EXPECT_EQ(b.block * world, b.size);
      EXPECT_EQ(b.shard_offset, shard);
      int64_t members = 0;
      for (int i : b.members) members += numels[static_cast<size_t>(i)];
      EXPECT_GE(b.size, members);
      EXPECT_LT(b.size - members, world);
      offset += b.size, shard += b.block;
    }
    EXPECT_EQ(L.total, offset);
    EXPECT_EQ(L.shard_total, shard);
    // Every tensor lies inside its bucket, and the ranks' owned parts tile it.
    for (size_t i = 0; i < numels.size(); ++i) {
      const auto& s = L.slots[i];
      const auto& b = L.buckets[static_cast<size_t>(s.bucket)];
      EXPECT_GE(s.offset, b.offset);
      EXPECT_LE(s.offset + s.numel, b.offset + b.size);
      int64_t covered = 0, next = s.offset;
      for (int r = 0; r < world; ++r) {
        auto [lo, hi] = L.owned(static_cast<int>(i), r);
        if (lo == hi) continue;
        EXPECT_EQ(lo, next);
        covered += hi - lo, next = hi;
      }
      EXPECT_EQ(covered, s.numel) << "tensor " << i << " world " << world;
    }
  }
}

TEST(BucketLayout, BadInput) {
  EXPECT_ERROR_MENTIONS(plan_buckets({1, 2}, {0, 0}, 4, 1), "repeated index 0");
  EXPECT_ERROR_MENTIONS(plan_buckets({1, 2}, {0}, 4, 1), "1 indices for 2 tensors");
  EXPECT_ERROR_MENTIONS(plan_buckets({1}, {0}, 0, 1), "bucket size");
}

TEST(World, LauncherEnvironmentPicksTheBackend) {
  EnvVar a("OMPI_COMM_WORLD_SIZE", nullptr), b("PMI_SIZE", nullptr), c("MV2_COMM_WORLD_SIZE", nullptr),
      d("SLURM_STEP_NUM_TASKS", nullptr);
  EXPECT_EQ(launched_world_size(), 1);
  EXPECT_EQ(resolve_dist("auto", Device::cpu()), "none");
  EXPECT_EQ(resolve_dist("mpi", Device::cpu()), "mpi");
  {
    EnvVar n("OMPI_COMM_WORLD_SIZE", "4");
    EXPECT_EQ(launched_world_size(), 4);
    EXPECT_EQ(resolve_dist("auto", Device::cpu()), "mpi");
    // Without NCCL in this binary, CUDA tensors fall back to MPI (which then refuses them).
    EXPECT_EQ(resolve_dist("auto", Device::cuda()), "mpi");
    EXPECT_ERROR_MENTIONS(world_communicator("none", Device::cpu(), 10), "train.dist = none", "4 processes");
  }
  {
    EnvVar n("SLURM_STEP_NUM_TASKS", "2");
    EXPECT_EQ(launched_world_size(), 2);
  }
  EXPECT_ERROR_MENTIONS(resolve_dist("gloo", Device::cpu()), "train.dist = gloo", "auto, none, mpi or nccl");
}

TEST(World, NoMpiInOrdinaryBinaries) {
  // The unit-test binaries do not link attnlab_mpi: asking for MPI is a clear error.
  EXPECT_FALSE(has_comm_backend("mpi"));
  EXPECT_ERROR_MENTIONS(world_communicator("mpi", Device::cpu(), 10), "train.dist = mpi", "without the mpi backend");
  auto w = world_communicator("auto", Device::cpu(), 10);
  EXPECT_EQ(w->backend(), "single");
  EXPECT_EQ(world_communicator("none", Device::cpu(), 10), w);
  EXPECT_EQ(current_world(), w);
  abort_job_if_distributed("not distributed: returns");  // one process: nothing to end
}
