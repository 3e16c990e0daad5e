// The NCCL backend on CUDA tensors: one rank per GPU. Skips without a build
// with NCCL, without a device, or with fewer GPUs than ranks; ctest runs it
// under mpirun (2 ranks) and alone (1 rank, one GPU).
#include <gtest/gtest.h>

#include "core/allocator.h"
#include "core/comm/world.h"
#include "test_util.h"
#ifdef ATTNLAB_HAS_NCCL
#include "core/comm/nccl/nccl_communicator.h"
#endif

using namespace attnlab;

namespace {

std::shared_ptr<Communicator> nccl_world() {
#ifdef ATTNLAB_HAS_NCCL
  static std::shared_ptr<Communicator> w;
  if (!w) {
    auto mpi = current_world();
    int ranks = mpi ? mpi->size() : 1;
    if (!cuda_available() || cuda_device_count() < ranks) return nullptr;
    w = make_nccl_world(Device::cuda());
  }
  return w;
#else
  return nullptr;
#endif
}

#define NEED_NCCL(c)        \
  auto c = nccl_world();    \
  if (!c) GTEST_SKIP() << "needs a build with NCCL and a CUDA device per rank"

}  // namespace

TEST(Nccl, AllReduceReduceScatterAllGatherBroadcast) {
  NEED_NCCL(c);
  const int r = c->rank(), w = c->size();
  const Device dev = c->scalar_device();  // this rank's GPU
  const double tri = w * (w + 1) / 2.0;

  Tensor f = Tensor::from(std::vector<float>{float(r + 1), 2.0f}, {}, dev);
  c->all_reduce(f);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{float(tri), 2.0f * w}));
  Tensor d = Tensor::from(std::vector<double>{double(r + 1)}, {}, dev);
  c->all_reduce(d, ReduceOp::avg);
  EXPECT_DOUBLE_EQ(d.item<double>(), tri / w);
  Tensor b16 = Tensor::full({8}, 1.5, DType::bf16, dev);
  c->all_reduce(b16);
  EXPECT_EQ(b16.to(DType::f32).to_vector<float>(), std::vector<float>(8, 1.5f * w));

  std::vector<float> in(static_cast<size_t>(3 * w));
  for (size_t k = 0; k < in.size(); ++k) in[k] = float(k);
  Tensor out = Tensor::zeros({3}, DType::f32, dev);
  c->reduce_scatter(Tensor::from(in, {}, dev), out);
  for (int k = 0; k < 3; ++k) EXPECT_EQ(out.to_vector<float>()[size_t(k)], float(3 * r + k) * w);

  Tensor buf = Tensor::zeros({2 * w}, DType::f32, dev);
  Tensor mine = buf.slice(2 * r, 2 * r + 2);
  mine.fill_(r + 1);
  c->all_gather(mine, buf);  // in place
  for (int k = 0; k < 2 * w; ++k) EXPECT_EQ(buf.to_vector<float>()[size_t(k)], float(k / 2 + 1));

  Tensor t = Tensor::full({5}, r == 0 ? 4.0 : 0.0, DType::f32, dev);
  c->broadcast(t, 0);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(5, 4.0f));
  EXPECT_DOUBLE_EQ(c->mean(r + 1.0), tri / w);
  c->barrier();
  EXPECT_FALSE(c->supports(Device::cpu()));
  Tensor host = Tensor::zeros({2});
  EXPECT_ERROR_MENTIONS(c->all_reduce(host), "all_reduce", "nccl", "cpu");
}

// The caching allocator is not stream-aware (core/allocator.h): what keeps a
// block away from the compute stream while NCCL's stream still uses it is the
// Work, which holds its tensors until it has seen the collective complete.
TEST(Nccl, WorkKeepsItsTensorsUntilTheCollectiveCompletes) {
  NEED_NCCL(c);
  const Device dev = c->scalar_device();
  Allocator& alloc = allocator_for(dev);
  const size_t bytes = size_t(1) << 24;  // a bucket of its own
  const size_t before = alloc.stats().bytes_in_use;
  WorkPtr work;
  {
    Tensor t = Tensor::full({static_cast<int64_t>(bytes / 4)}, 1.0, DType::f32, dev);
    work = c->all_reduce_async(t);
  }  // the caller's handle is gone; the block must stay in use
  EXPECT_GE(alloc.stats().bytes_in_use, before + bytes);
  work->wait();
  work.reset();
  EXPECT_EQ(alloc.stats().bytes_in_use, before);
  // Now the block is free and reused, on the default stream, after the collective.
  const size_t allocs = alloc.stats().system_allocs;
  Tensor again = Tensor::zeros({static_cast<int64_t>(bytes / 4)}, DType::f32, dev);
  EXPECT_EQ(alloc.stats().system_allocs, allocs);
  EXPECT_EQ(again.to_vector<float>()[0], 0.0f);
}
