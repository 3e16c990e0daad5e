#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/loader.h"
#include "data/shards.h"
#include "test_util.h"

namespace attnlab {
namespace {

using test::TempDir;

// Token i is i (mod 60000), so a window's first token is its start.
TokenShard counting_shard(size_t n) {
  TokenShard s;
  s.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) s.tokens[i] = static_cast<uint32_t>(i % 60000);
  s.tokenizer = "test";
  s.vocab_size = 60000;
  return s;
}

LoaderOptions opts(int64_t B, int64_t T, uint64_t seed, LoaderMode mode, int rank = 0, int world = 1) {
  LoaderOptions o;
  o.batch = B, o.seq_len = T, o.seed = seed, o.mode = mode, o.rank = rank, o.world_size = world;
  return o;
}

std::vector<int64_t> rows(const Tensor& t) { return t.to_vector<int64_t>(); }

std::vector<int64_t> row(const Tensor& t, int64_t r) {
  std::vector<int64_t> all = rows(t);
  const int64_t T = t.size(1);
  return {all.begin() + r * T, all.begin() + (r + 1) * T};
}

TEST(Loader, TrainBatchesHaveShiftedTargetsInBounds) {
  const size_t n = 1000;
  TokenLoader ld(counting_shard(n), "mem", opts(8, 16, 1, LoaderMode::train));
  for (int step = 0; step < 50; ++step) {
    Batch b = ld.next();
    ASSERT_EQ(b.x.shape(), (Shape{8, 16}));
    ASSERT_EQ(b.x.dtype(), DType::i64);
    ASSERT_EQ(b.y.shape(), (Shape{8, 16}));
    auto x = rows(b.x), y = rows(b.y);
    for (int64_t r = 0; r < 8; ++r) {
      const int64_t start = x[static_cast<size_t>(r * 16)];
      EXPECT_GE(start, 0);
      EXPECT_LE(start, static_cast<int64_t>(n) - 16 - 1);
      for (int64_t t = 0; t < 16; ++t) {
        EXPECT_EQ(x[static_cast<size_t>(r * 16 + t)], start + t);
        EXPECT_EQ(y[static_cast<size_t>(r * 16 + t)], start + t + 1);
      }
    }
  }
}

TEST(Loader, TrainCoversEveryStartIncludingTheLast) {
  // n - T = 4 possible starts: 0..3; the last one uses the final token as a target.
  TokenLoader ld(counting_shard(20), "mem", opts(16, 16, 3, LoaderMode::train));
  std::set<int64_t> starts;
  for (int step = 0; step < 20; ++step) {
    Batch b = ld.next();
    auto x = rows(b.x);
    for (int64_t r = 0; r < 16; ++r) starts.insert(x[static_cast<size_t>(r * 16)]);
  }
  EXPECT_EQ(starts, (std::set<int64_t>{0, 1, 2, 3}));
}

TEST(Loader, SameSeedSameBatches) {
  TokenShard s = counting_shard(5000);
  TokenLoader a(s, "a", opts(4, 32, 42, LoaderMode::train));
  TokenLoader b(s, "b", opts(4, 32, 42, LoaderMode::train));
  TokenLoader c(s, "c", opts(4, 32, 43, LoaderMode::train));
  bool any_diff = false;
  for (int step = 0; step < 10; ++step) {
    Batch ba = a.next(), bb = b.next(), bc = c.next();
    EXPECT_EQ(rows(ba.x), rows(bb.x));
    EXPECT_EQ(rows(ba.y), rows(bb.y));
    any_diff |= rows(ba.x) != rows(bc.x);
  }
  EXPECT_TRUE(any_diff) << "a different seed should give different batches";
}

TEST(Loader, ResumeReproducesTheStream) {
  for (LoaderMode mode : {LoaderMode::train, LoaderMode::val}) {
    TokenShard s = counting_shard(3000);
    TokenLoader full(s, "full", opts(3, 50, 7, mode));
    std::vector<std::vector<int64_t>> expected;
    LoaderState mid;
    for (int step = 0; step < 30; ++step) {
      if (step == 12) mid = full.state();
      expected.push_back(rows(full.next().x));
    }
    TokenLoader resumed(s, "resumed", opts(3, 50, 7, mode));
    resumed.set_state(mid);
    EXPECT_EQ(resumed.state(), mid);
    for (int step = 12; step < 30; ++step) EXPECT_EQ(rows(resumed.next().x), expected[step]) << step;
    resumed.reset();
    EXPECT_EQ(rows(resumed.next().x), expected[0]);
  }
}

TEST(Loader, TwoRanksSeeTheOneRankBatch) {
  TokenShard s = counting_shard(4000);
  TokenLoader one(s, "one", opts(8, 24, 11, LoaderMode::train));
  TokenLoader r0(s, "r0", opts(4, 24, 11, LoaderMode::train, 0, 2));
  TokenLoader r1(s, "r1", opts(4, 24, 11, LoaderMode::train, 1, 2));
  for (int step = 0; step < 10; ++step) {
    auto all = rows(one.next().x);
    auto a = rows(r0.next().x), b = rows(r1.next().x);
    a.insert(a.end(), b.begin(), b.end());
    EXPECT_EQ(a, all) << "step " << step;
  }
}

TEST(Loader, ValIsSequentialAndWraps) {
  // 10 windows of T=10 in 101 tokens; B=4 takes windows 0-3, 4-7, then 8, 9, 0, 1.
  TokenLoader ld(counting_shard(101), "val.h5", opts(4, 10, 0, LoaderMode::val));
  EXPECT_EQ(ld.num_windows(), 10);
  EXPECT_EQ(ld.batches_per_pass(), 3);
  std::vector<int64_t> starts;
  for (int step = 0; step < 3; ++step) {
    Batch b = ld.next();
    for (int64_t r = 0; r < 4; ++r) {
      auto x = row(b.x, r), y = row(b.y, r);
      starts.push_back(x[0]);
      for (int64_t t = 0; t < 10; ++t) EXPECT_EQ(y[static_cast<size_t>(t)], x[static_cast<size_t>(t)] + 1);
    }
  }
  EXPECT_EQ(starts, (std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 0, 10}));
  ld.reset();
  EXPECT_EQ(row(ld.next().x, 0)[0], 0);
}

TEST(Loader, ValRanksInterleave) {
  TokenShard s = counting_shard(1001);
  TokenLoader one(s, "one", opts(6, 10, 0, LoaderMode::val));
  TokenLoader r0(s, "r0", opts(3, 10, 0, LoaderMode::val, 0, 2));
  TokenLoader r1(s, "r1", opts(3, 10, 0, LoaderMode::val, 1, 2));
  for (int step = 0; step < 20; ++step) {  // 100 windows: wraps after 16.7 steps
    Batch b = one.next(), b0 = r0.next(), b1 = r1.next();
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_EQ(row(b0.x, i), row(b.x, 2 * i)) << step;
      EXPECT_EQ(row(b1.x, i), row(b.x, 2 * i + 1)) << step;
    }
  }
}

TEST(Loader, ReadsShardFiles) {
  TempDir dir;
  write_shard(dir.file("t.bin"), counting_shard(500));
  write_shard(dir.file("t.h5"), counting_shard(500));
  TokenLoader a(dir.file("t.bin"), opts(2, 8, 5, LoaderMode::train));
  TokenLoader b(dir.file("t.h5"), opts(2, 8, 5, LoaderMode::train));
  EXPECT_EQ(b.shard().tokenizer, "test");
  EXPECT_EQ(rows(a.next().x), rows(b.next().x));
}

TEST(Loader, Errors) {
  EXPECT_ERROR_MENTIONS(TokenLoader(counting_shard(64), "tiny.h5", opts(2, 64, 0, LoaderMode::train)),
                        "tiny.h5", "64 tokens", "65");
  EXPECT_ERROR_MENTIONS(TokenLoader(counting_shard(100), "s", opts(2, 8, 0, LoaderMode::train, 2, 2)),
                        "rank 2");
  EXPECT_ERROR_MENTIONS(TokenLoader(counting_shard(100), "s", opts(0, 8, 0, LoaderMode::train)), "batch 0");
  TempDir dir;
  EXPECT_ERROR_MENTIONS(TokenLoader(dir.file("gone.bin"), opts(2, 8, 0, LoaderMode::train)), "gone.bin");
  // Exactly T + 1 tokens is enough for one window.
  TokenLoader ok(counting_shard(65), "ok", opts(2, 64, 0, LoaderMode::val));
  EXPECT_EQ(ok.num_windows(), 1);
  EXPECT_EQ(row(ok.next().x, 1)[0], 0);
}

}  // namespace
}  // namespace attnlab
