// The caching allocator: bucket sizes, alignment, reuse, stats, empty_cache,
// out-of-memory recovery, and the steady-state property (DESIGN principle 6):
// after warm-up a forward + backward makes no system allocation.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "autograd/var.h"
#include "core/allocator.h"
#include "core/ops.h"
#include "core/test_helpers.h"

using namespace attnlab;

namespace {

// System hooks that count calls and can be told to fail.
struct FakeSystem {
  static inline int allocs = 0, frees = 0;
  static inline int fail_next = 0;           // fail this many calls, then succeed
  static inline size_t fail_above = SIZE_MAX;  // always fail requests above this size
  static inline std::vector<size_t> sizes;
  static void reset() {
    allocs = frees = fail_next = 0;
    fail_above = SIZE_MAX;
    sizes.clear();
  }
  static void* alloc(size_t n) {
    if (n > fail_above) return nullptr;
    if (fail_next > 0) {
      --fail_next;
      return nullptr;
    }
    ++allocs;
    sizes.push_back(n);
    return std::aligned_alloc(64, n);
  }
  static void free(void* p) {
    ++frees;
    std::free(p);
  }
};

}  // namespace

TEST(Allocator, BucketSizes) {
  // 64-byte multiples up to 1 KiB.
  EXPECT_EQ(CachingAllocator::bucket_size(0), 64u);
  EXPECT_EQ(CachingAllocator::bucket_size(1), 64u);
  EXPECT_EQ(CachingAllocator::bucket_size(64), 64u);
  EXPECT_EQ(CachingAllocator::bucket_size(65), 128u);
  EXPECT_EQ(CachingAllocator::bucket_size(1000), 1024u);
  EXPECT_EQ(CachingAllocator::bucket_size(1024), 1024u);
  for (size_t n = 1; n <= 1024; ++n) {
    size_t b = CachingAllocator::bucket_size(n);
    ASSERT_EQ(b % 64, 0u);
    ASSERT_GE(b, n);
    ASSERT_LT(b - n, 64u);
  }
  // Four buckets per power of two above 1 KiB.
  EXPECT_EQ(CachingAllocator::bucket_size(1025), 1280u);
  EXPECT_EQ(CachingAllocator::bucket_size(1280), 1280u);
  EXPECT_EQ(CachingAllocator::bucket_size(1281), 1536u);
  EXPECT_EQ(CachingAllocator::bucket_size(1600), 1792u);
  EXPECT_EQ(CachingAllocator::bucket_size(2000), 2048u);
  EXPECT_EQ(CachingAllocator::bucket_size(2049), 2560u);
  EXPECT_EQ(CachingAllocator::bucket_size(3 << 20), 3u << 20);
  EXPECT_EQ(CachingAllocator::bucket_size((1 << 20) + 1), (1u << 20) + (1u << 18));
  for (size_t p = 1024; p <= (size_t(1) << 34); p <<= 1) {
    std::set<size_t> buckets;
    for (size_t k = 0; k < 64; ++k) buckets.insert(CachingAllocator::bucket_size(p + k * (p / 64)));
    EXPECT_EQ(buckets, (std::set<size_t>{p, p + p / 4, p + p / 2, p + 3 * p / 4, 2 * p})) << p;
  }
  // Every bucket holds the request, wastes at most 25%, and is a 64-byte multiple.
  for (size_t n = 1025; n < 300000; n += 97) {
    size_t b = CachingAllocator::bucket_size(n);
    ASSERT_GE(b, n);
    ASSERT_LE(b - n, n / 4);
    ASSERT_EQ(b % 64, 0u);
    ASSERT_EQ(CachingAllocator::bucket_size(b), b) << "a bucket size maps to itself";
  }
}

TEST(Allocator, ReusesFreedBlocksAndKeepsStats) {
  FakeSystem::reset();
  {
    CachingAllocator a(FakeSystem::alloc, FakeSystem::free);
    AllocatorStats s = a.stats();
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.system_allocs, 0u);

    void* p = a.allocate(100);
    s = a.stats();
    EXPECT_EQ(s.bytes_in_use, 128u);
    EXPECT_EQ(s.system_allocs, 1u);
    EXPECT_EQ(FakeSystem::sizes.back(), 128u) << "the system sees the bucket size";

    a.deallocate(p, 100);
    s = a.stats();
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.bytes_cached, 128u);

    // Same bucket (65..128 bytes): the same block comes back, no system call.
    void* q = a.allocate(70);
    EXPECT_EQ(q, p);
    s = a.stats();
    EXPECT_EQ(s.system_allocs, 1u);
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.bytes_in_use, 128u);

    // Another bucket needs a new block.
    void* r = a.allocate(200);
    EXPECT_NE(r, q);
    EXPECT_EQ(a.stats().system_allocs, 2u);
    EXPECT_EQ(a.stats().bytes_in_use, 128u + 256u);

    // Two blocks of a bucket live at once need two system blocks; both are reused after.
    void* x = a.allocate(3000);
    void* y = a.allocate(3000);
    EXPECT_EQ(a.stats().system_allocs, 4u);
    a.deallocate(x, 3000);
    a.deallocate(y, 3000);
    void* x2 = a.allocate(2900);  // same bucket (3072)
    void* y2 = a.allocate(3072);
    EXPECT_EQ(std::set<void*>({x, y}), std::set<void*>({x2, y2}));
    EXPECT_EQ(a.stats().system_allocs, 4u);

    a.deallocate(q, 70);
    a.deallocate(r, 200);
    a.deallocate(x2, 2900);
    a.deallocate(y2, 3072);
    s = a.stats();
    EXPECT_EQ(s.bytes_in_use, 0u);
    EXPECT_EQ(s.bytes_cached, 128u + 256u + 2 * 3072u);
    EXPECT_EQ(s.system_frees, 0u);
    a.deallocate(nullptr, 10);  // ignored
    EXPECT_EQ(a.stats().bytes_cached, s.bytes_cached);

    // empty_cache returns every cached block to the system.
    a.empty_cache();
    s = a.stats();
    EXPECT_EQ(s.bytes_cached, 0u);
    EXPECT_EQ(s.system_frees, 4u);
    EXPECT_EQ(FakeSystem::frees, 4);
    // And the next allocation goes to the system again.
    void* z = a.allocate(100);
    EXPECT_EQ(a.stats().system_allocs, 5u);
    a.deallocate(z, 100);
  }
  // The destructor empties the cache.
  EXPECT_EQ(FakeSystem::frees, 5);
}

TEST(Allocator, EmptyCacheKeepsBlocksInUse) {
  FakeSystem::reset();
  CachingAllocator a(FakeSystem::alloc, FakeSystem::free);
  void* used = a.allocate(500);
  void* cached = a.allocate(500);
  a.deallocate(cached, 500);
  a.empty_cache();
  EXPECT_EQ(FakeSystem::frees, 1);
  EXPECT_EQ(a.stats().bytes_in_use, 512u);
  static_cast<char*>(used)[511] = 1;  // still ours
  a.deallocate(used, 500);
  a.empty_cache();
  EXPECT_EQ(FakeSystem::frees, 2);
}

TEST(Allocator, OutOfMemoryFreesTheCacheAndRetries) {
  FakeSystem::reset();
  CachingAllocator a(FakeSystem::alloc, FakeSystem::free);
  void* p = a.allocate(2048);
  a.deallocate(p, 2048);
  EXPECT_EQ(a.stats().bytes_cached, 2048u);
  // The system refuses once: the allocator gives its cache back and tries again.
  FakeSystem::fail_next = 1;
  void* q = a.allocate(3000);
  EXPECT_NE(q, nullptr);
  EXPECT_EQ(FakeSystem::frees, 1);
  EXPECT_EQ(a.stats().bytes_cached, 0u);
  EXPECT_EQ(a.stats().system_frees, 1u);
  EXPECT_EQ(a.stats().system_allocs, 2u);
  EXPECT_EQ(a.stats().bytes_in_use, 3072u);
  a.deallocate(q, 3000);
  // A request the system can never satisfy is an attnlab::Error naming the size.
  FakeSystem::fail_above = 1 << 20;
  EXPECT_TRUE(attnlab::testing::throws_error([&] { a.allocate(size_t(5) << 20); },
                                             {"out of memory", "5242880"}));
  EXPECT_EQ(a.stats().bytes_in_use, 0u);
  EXPECT_EQ(a.stats().system_allocs, 2u);
}

TEST(Allocator, CpuBlocksAre64ByteAligned) {
  Allocator& cpu = allocator_for(Device::cpu());
  std::vector<std::pair<void*, size_t>> blocks;
  for (size_t n : {1u, 3u, 64u, 100u, 1000u, 1025u, 4097u, 100000u}) {
    void* p = cpu.allocate(n);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << n;
    blocks.push_back({p, n});
  }
  for (auto [p, n] : blocks) cpu.deallocate(p, n);
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u16})
    for (int64_t n : {1, 7, 33, 1000}) {
      Tensor t = Tensor::empty({n}, dt);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t.storage()->data()) % 64, 0u);
    }
  EXPECT_EQ(&allocator_for(Device::cpu()), &cpu) << "one CPU allocator";
}

TEST(Allocator, TensorsReturnTheirStorage) {
  Allocator& cpu = allocator_for(Device::cpu());
  { Tensor warm = Tensor::empty({37, 11}); }
  AllocatorStats s0 = cpu.stats();
  void* first = nullptr;
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({37, 11});
    if (i == 0) first = t.raw_data();
    EXPECT_EQ(t.raw_data(), first) << "the freed block is reused";
    EXPECT_EQ(cpu.stats().bytes_in_use, s0.bytes_in_use + CachingAllocator::bucket_size(37 * 11 * 4));
  }
  AllocatorStats s1 = cpu.stats();
  EXPECT_EQ(s1.system_allocs, s0.system_allocs);
  EXPECT_EQ(s1.bytes_in_use, s0.bytes_in_use);
  // Views do not allocate.
  Tensor base = Tensor::zeros({8, 8});
  size_t allocs = cpu.stats().system_allocs, in_use = cpu.stats().bytes_in_use;
  Tensor v1 = base.reshape({64}), v2 = base.slice(2, 5), v3 = base.slice(3, 4).narrow(1, 2);
  EXPECT_EQ(cpu.stats().system_allocs, allocs);
  EXPECT_EQ(cpu.stats().bytes_in_use, in_use);
}

namespace {

// A small MLP trained on a fixed batch: embedding -> matmul + bias -> gelu ->
// layer_norm -> matmul -> rms_norm (on a residual) -> matmul -> cross-entropy.
struct Mlp {
  std::vector<Var> params;
  Var emb, w1, b1, ln_w, ln_b, w2, rms_w, w_out;
  Tensor ids, targets;

  explicit Mlp(DType dt) {
    using attnlab::testing::randn;
    auto param = [&](const Shape& s, uint64_t seed, double std) {
      Var v(randn(s, seed, dt, std), true);
      params.push_back(v);
      return v;
    };
    emb = param({13, 12}, 1, 1.0);
    w1 = param({12, 24}, 2, 0.2);
    b1 = param({24}, 3, 0.1);
    ln_w = param({24}, 4, 1.0);
    ln_b = param({24}, 5, 0.1);
    w2 = param({24, 12}, 6, 0.2);
    rms_w = param({12}, 7, 1.0);
    w_out = param({12, 13}, 8, 0.2);
    ids = Tensor::from<int64_t>({0, 3, 5, 12, 3, 7, 1, 2, 9}, {3, 3});
    targets = Tensor::from<int64_t>({3, 5, 12, 3, 7, -100, 2, 9, 0});
  }

  double step() {
    for (Var& p : params) p.zero_grad();
    Var x = ag::embedding(emb, ids);                      // [3, 3, 12]
    Var h = ag::add(ag::matmul(x, w1), b1);               // shared 2-D rhs, bias broadcast
    h = ag::layer_norm(ag::gelu(h), ln_w, ln_b, 1e-5);
    Var r = ag::add(x, ag::matmul(h, w2));                // residual
    r = ag::rms_norm(r, rms_w, 1e-6);
    Var logits = ag::reshape(ag::matmul(r, w_out), {9, 13});
    Var loss = ag::cross_entropy(logits, targets);
    loss.backward();
    return loss.data().item<double>();
  }
};

// The core MLP of the brief: matmul, gelu, layer_norm, cross_entropy only.
struct PlainMlp {
  std::vector<Var> params;
  Tensor x, targets;
  explicit PlainMlp(DType dt) {
    using attnlab::testing::randn;
    x = randn({6, 10}, 11, dt);
    targets = Tensor::from<int32_t>({1, 0, 4, 4, 2, 3});
    params = {Var(randn({10, 16}, 12, dt, 0.3), true), Var(randn({16}, 13, dt), true),
              Var(randn({16}, 14, dt, 0.1), true), Var(randn({16, 5}, 15, dt, 0.3), true)};
  }
  double step() {
    for (Var& p : params) p.zero_grad();
    Var h = ag::gelu(ag::matmul(Var(x), params[0]));
    h = ag::layer_norm(h, params[1], params[2], 1e-5);
    Var loss = ag::cross_entropy(ag::matmul(h, params[3]), targets);
    loss.backward();
    return loss.data().item<double>();
  }
};

template <class Model>
void expect_no_steady_state_allocations(DType dt, int warmups = 1) {
  Allocator& cpu = allocator_for(Device::cpu());
  cpu.empty_cache();  // start from an empty cache: blocks left by other tests must not mask a miss
  Model m(dt);
  std::vector<size_t> allocs;
  std::vector<double> losses;
  for (int i = 0; i < warmups; ++i) losses.push_back(m.step());
  allocs.push_back(cpu.stats().system_allocs);
  size_t in_use = cpu.stats().bytes_in_use;
  for (int i = 0; i < 5; ++i) {
    losses.push_back(m.step());
    allocs.push_back(cpu.stats().system_allocs);
    EXPECT_EQ(cpu.stats().bytes_in_use, in_use) << "iteration " << i + warmups + 1 << " holds on to memory";
  }
  std::string per_step;
  for (size_t i = 1; i < allocs.size(); ++i)
    per_step += (i > 1 ? ", " : "") + std::to_string(allocs[i] - allocs[i - 1]);
  EXPECT_EQ(allocs.back(), allocs.front()) << dtype_name(dt) << ", " << warmups
                                           << " warm-up step(s): new system allocations in each later step: ["
                                           << per_step << "]";
  // Same parameters, same batch: the same loss every time, and gradients exist.
  for (double l : losses) EXPECT_EQ(l, losses[0]);
  for (const Var& p : m.params) EXPECT_TRUE(p.grad().defined());
}

}  // namespace

TEST(Allocator, SteadyStateForwardBackwardMakesNoSystemAllocations) {
  expect_no_steady_state_allocations<PlainMlp>(DType::f32);
  expect_no_steady_state_allocations<PlainMlp>(DType::f64);
}

// Leaf gradients created by the first backward would make step 2 hold more
// than step 1; zero_grad() creates them up front, so one warm-up step suffices.
TEST(Allocator, SteadyStateWithEmbeddingResidualAndRmsNorm) {
  expect_no_steady_state_allocations<Mlp>(DType::f32);
  expect_no_steady_state_allocations<Mlp>(DType::f64);
}

// And with two warm-up steps, of course.
TEST(Allocator, SteadyStateAfterTwoWarmupSteps) {
  expect_no_steady_state_allocations<Mlp>(DType::f32, 2);
  expect_no_steady_state_allocations<Mlp>(DType::f64, 2);
  expect_no_steady_state_allocations<PlainMlp>(DType::f32, 2);
}
