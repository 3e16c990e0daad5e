// Counter-based Philox RNG: known answers, determinism, the stream property
// (element i depends only on seed, offset + i/4 and lane i%4), Generator offsets,
// distribution sanity, and f32/f64 agreement. GPU parity lives in the CUDA tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "core/ops.h"
#include "core/philox.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace attnlab;

namespace {

std::vector<double> uniform_fill(int64_t n, uint64_t seed, uint64_t offset, double lo = 0.0, double hi = 1.0,
                                 DType dt = DType::f64) {
  Tensor t = Tensor::empty({n}, dt);
  ops::uniform(t, seed, offset, lo, hi);
  return t.to_vector<double>();
}

std::vector<double> normal_fill(int64_t n, uint64_t seed, uint64_t offset, double mean = 0.0, double std = 1.0,
                                DType dt = DType::f64) {
  Tensor t = Tensor::empty({n}, dt);
  ops::normal(t, seed, offset, mean, std);
  return t.to_vector<double>();
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double var_of(const std::vector<double>& v) {
  double m = mean_of(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}

size_t count_equal(const std::vector<double>& a, const std::vector<double>& b) {
  size_t n = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += a[i] == b[i];
  return n;
}

}  // namespace

TEST(Philox, KnownAnswerOfRandom123) {
  // Random123's kat_vectors: philox4x32 10, counter 0, key 0.
  philox::U32x4 r = philox::philox4x32_10(0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Philox, HelpersFollowTheStreamLayout) {
  EXPECT_EQ(philox::calls_for(0), 0u);
  EXPECT_EQ(philox::calls_for(1), 1u);
  EXPECT_EQ(philox::calls_for(4), 1u);
  EXPECT_EQ(philox::calls_for(5), 2u);
  EXPECT_EQ(philox::uniform01(0), 0.0);
  EXPECT_EQ(philox::uniform01(0xffffffffu), 16777215.0 / 16777216.0);
  for (uint64_t i = 0; i < 12; ++i) {
    philox::U32x4 r = philox::philox4x32_10(7 + i / 4, 99);
    EXPECT_EQ(philox::uniform_at(99, 7, i), philox::uniform01(r.v[i % 4]));
  }
  // Both words of the seed and of the counter matter.
  EXPECT_NE(philox::philox4x32_10(0, 1).v[0], philox::philox4x32_10(0, 1 + (uint64_t(1) << 32)).v[0]);
  EXPECT_NE(philox::philox4x32_10(1, 0).v[0], philox::philox4x32_10(1 + (uint64_t(1) << 32), 0).v[0]);
}

TEST(Rng, SameSeedAndOffsetGiveIdenticalStreams) {
  EXPECT_EQ(uniform_fill(1001, 42, 5), uniform_fill(1001, 42, 5));
  EXPECT_EQ(normal_fill(1001, 42, 5), normal_fill(1001, 42, 5));
  EXPECT_EQ(uniform_fill(33, 42, 5, -2, 3, DType::f32), uniform_fill(33, 42, 5, -2, 3, DType::f32));
}

TEST(Rng, DifferentSeedsOrOffsetsDiffer) {
  std::vector<double> a = uniform_fill(1000, 1, 0), b = uniform_fill(1000, 2, 0);
  EXPECT_LT(count_equal(a, b), 5u);
  std::vector<double> c = uniform_fill(1000, 1, 1000);  // disjoint counters
  EXPECT_LT(count_equal(a, c), 5u);
  EXPECT_LT(count_equal(normal_fill(1000, 1, 0), normal_fill(1000, 2, 0)), 5u);
  // Seeds differing only in the high word.
  EXPECT_LT(count_equal(a, uniform_fill(1000, 1 + (uint64_t(1) << 32), 0)), 5u);
}

TEST(Rng, FillIsATailOfALongerFill) {
  // A fill of n elements at offset o equals elements [4k, 4k + n) of a fill at offset o - k.
  for (int64_t n : {1, 3, 4, 7, 37}) {
    for (uint64_t k : {0u, 1u, 5u}) {
      uint64_t o = 10;
      std::vector<double> longer = uniform_fill(static_cast<int64_t>(4 * k) + n, 3, o - k);
      std::vector<double> tail(longer.begin() + static_cast<long>(4 * k), longer.end());
      EXPECT_EQ(uniform_fill(n, 3, o), tail) << "n " << n << " k " << k;
      std::vector<double> nlong = normal_fill(static_cast<int64_t>(4 * k) + n, 3, o - k);
      std::vector<double> ntail(nlong.begin() + static_cast<long>(4 * k), nlong.end());
      EXPECT_EQ(normal_fill(n, 3, o), ntail) << "n " << n << " k " << k;
    }
  }
  // And a prefix: the first n elements don't depend on how many follow.
  std::vector<double> big = normal_fill(100, 8, 2);
  EXPECT_EQ(normal_fill(13, 8, 2), std::vector<double>(big.begin(), big.begin() + 13));
}

TEST(Rng, ElementsMatchThePhiloxFormulas) {
  // Fills store philox::uniform_value / normal_value (one FMA each, as on the GPU).
  std::vector<double> u = uniform_fill(23, 11, 4, -1.0, 2.3);
  std::vector<double> z = normal_fill(23, 11, 4, 0.5, 0.7);
  for (uint64_t i = 0; i < 23; ++i) {
    EXPECT_EQ(u[i], philox::uniform_value(11, 4, i, -1.0, 2.3));
    EXPECT_EQ(z[i], philox::normal_value(11, 4, i, 0.5, 0.7));
    EXPECT_NEAR(u[i], -1.0 + 3.3 * philox::uniform_at(11, 4, i), 1e-15);
    EXPECT_NEAR(z[i], 0.5 + 0.7 * philox::normal_at(11, 4, i), 1e-14);
  }
  // Box-Muller: lanes 0 and 1 are r cos(theta) and r sin(theta) of one radius.
  philox::U32x4 r = philox::philox4x32_10(4, 11);
  double u1 = ((r.v[0] >> 8) + 1) * (1.0 / 16777216.0);
  double rad2 = -2.0 * std::log(u1);
  double a = philox::normal_at(11, 4, 0), b = philox::normal_at(11, 4, 1);
  EXPECT_NEAR(a * a + b * b, rad2, 1e-12 * std::max(1.0, rad2));
}

TEST(Rng, GeneratorOffsetsAdvance) {
  Generator gen(7);
  EXPECT_EQ(gen.seed(), 7u);
  EXPECT_EQ(gen.offset(), 0u);
  Tensor a = Tensor::empty({10}, DType::f64);
  a.uniform_(gen);
  EXPECT_EQ(gen.offset(), 3u);  // ceil(10 / 4) Philox calls
  Tensor b = Tensor::empty({10}, DType::f64);
  b.uniform_(gen);
  EXPECT_EQ(gen.offset(), 6u);
  EXPECT_LT(count_equal(a.to_vector<double>(), b.to_vector<double>()), 2u) << "consecutive fills differ";
  Tensor c = Tensor::empty({4, 2}, DType::f32);
  c.normal_(gen, 1.0, 0.1);
  EXPECT_EQ(gen.offset(), 8u);
  // The fills equal direct fills at the offsets the generator handed out.
  EXPECT_EQ(a.to_vector<double>(), uniform_fill(10, 7, 0));
  EXPECT_EQ(b.to_vector<double>(), uniform_fill(10, 7, 3));
  EXPECT_EQ(c.to_vector<double>(), normal_fill(8, 7, 6, 1.0, 0.1, DType::f32));
  // advance returns the first reserved counter.
  EXPECT_EQ(gen.advance(5), 8u);
  EXPECT_EQ(gen.offset(), 13u);
  // An empty fill reserves nothing.
  Tensor e = Tensor::empty({0}, DType::f64);
  e.uniform_(gen);
  EXPECT_EQ(gen.offset(), 13u);
}

TEST(Rng, RestoringTheStateReproduces) {
  Generator gen(123, 40);
  Tensor warm = Tensor::empty({17}, DType::f64);
  warm.normal_(gen);
  uint64_t seed = gen.seed(), offset = gen.offset();
  Tensor x = Tensor::empty({50}, DType::f64), y = Tensor::empty({9}, DType::f32);
  x.normal_(gen);
  y.uniform_(gen, -1, 1);
  double u = gen.next_uniform();
  uint64_t w = gen.next_u64();

  Generator other(999);
  other.set_state(seed, offset);
  Tensor x2 = Tensor::empty({50}, DType::f64), y2 = Tensor::empty({9}, DType::f32);
  x2.normal_(other);
  y2.uniform_(other, -1, 1);
  EXPECT_EQ(x2.to_vector<double>(), x.to_vector<double>());
  EXPECT_EQ(y2.to_vector<float>(), y.to_vector<float>());
  EXPECT_EQ(other.next_uniform(), u);
  EXPECT_EQ(other.next_u64(), w);
  EXPECT_EQ(other.offset(), gen.offset());
}

TEST(Rng, HostDraws) {
  Generator gen(5);
  std::set<uint64_t> seen;
  for (int i = 0; i < 1000; ++i) {
    double u = gen.next_uniform();
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
    seen.insert(gen.next_u64());
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(gen.offset(), 2000u);  // one Philox call per number
  // next_u64 is the first two lanes of the call at the current offset.
  Generator g2(5, 17);
  philox::U32x4 r = philox::philox4x32_10(17, 5);
  EXPECT_EQ(g2.next_u64(), (uint64_t(r.v[0]) << 32) | r.v[1]);
}

TEST(Rng, UniformRangeAndMoments) {
  const int64_t n = 100000;
  std::vector<double> u = uniform_fill(n, 2024, 0);
  auto [mn, mx] = std::minmax_element(u.begin(), u.end());
  EXPECT_GE(*mn, 0.0);
  EXPECT_LT(*mx, 1.0);
  EXPECT_NEAR(mean_of(u), 0.5, 0.005);            // std error ~0.0009
  EXPECT_NEAR(var_of(u), 1.0 / 12.0, 0.002);       // std error ~0.0003
  // Scaled range, f32 included.
  for (DType dt : {DType::f32, DType::f64}) {
    std::vector<double> s = uniform_fill(n, 77, 3, -3.0, 5.0, dt);
    auto [lo, hi] = std::minmax_element(s.begin(), s.end());
    EXPECT_GE(*lo, -3.0);
    EXPECT_LT(*hi, 5.0);
    EXPECT_NEAR(mean_of(s), 1.0, 0.04);
  }
  // Roughly uniform across 10 bins.
  std::vector<int> bins(10);
  for (double x : u) bins[static_cast<size_t>(x * 10)]++;
  for (int b : bins) EXPECT_NEAR(b, n / 10, 600);  // std ~95
}

TEST(Rng, NormalMoments) {
  const int64_t n = 100000;
  std::vector<double> z = normal_fill(n, 31337, 0);
  EXPECT_NEAR(mean_of(z), 0.0, 0.02);   // std error ~0.003
  EXPECT_NEAR(var_of(z), 1.0, 0.03);    // std error ~0.0045
  size_t within1 = 0, within2 = 0;
  double mx = 0;
  for (double x : z) {
    within1 += std::fabs(x) < 1.0;
    within2 += std::fabs(x) < 2.0;
    mx = std::max(mx, std::fabs(x));
    ASSERT_TRUE(std::isfinite(x));
  }
  EXPECT_NEAR(static_cast<double>(within1) / n, 0.6827, 0.01);
  EXPECT_NEAR(static_cast<double>(within2) / n, 0.9545, 0.005);
  EXPECT_GT(mx, 3.0);
  EXPECT_LT(mx, 7.0);
  // Every lane is standard normal on its own (cos and sin halves alike).
  for (int lane = 0; lane < 4; ++lane) {
    std::vector<double> l;
    for (size_t i = static_cast<size_t>(lane); i < z.size(); i += 4) l.push_back(z[i]);
    EXPECT_NEAR(mean_of(l), 0.0, 0.04) << "lane " << lane;
    EXPECT_NEAR(var_of(l), 1.0, 0.06) << "lane " << lane;
  }
  // Mean and std parameters.
  std::vector<double> s = normal_fill(n, 5, 0, -2.0, 3.0);
  EXPECT_NEAR(mean_of(s), -2.0, 0.06);
  EXPECT_NEAR(std::sqrt(var_of(s)), 3.0, 0.05);
  // Adjacent lanes of a pair are uncorrelated.
  double cov = 0;
  for (size_t i = 0; i + 1 < z.size(); i += 2) cov += z[i] * z[i + 1];
  EXPECT_NEAR(cov / (n / 2), 0.0, 0.03);
}

TEST(Rng, F32AndF64FillsAgreeAfterRounding) {
  for (int64_t n : {1, 5, 1000}) {
    std::vector<double> u64 = uniform_fill(n, 9, 2, -0.7, 0.3, DType::f64);
    std::vector<float> u32 = [&] {
      Tensor t = Tensor::empty({n}, DType::f32);
      ops::uniform(t, 9, 2, -0.7, 0.3);
      return t.to_vector<float>();
    }();
    std::vector<double> z64 = normal_fill(n, 9, 2, 0.1, 0.02, DType::f64);
    std::vector<float> z32 = [&] {
      Tensor t = Tensor::empty({n}, DType::f32);
      ops::normal(t, 9, 2, 0.1, 0.02);
      return t.to_vector<float>();
    }();
    for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
      ASSERT_EQ(u32[i], static_cast<float>(u64[i])) << i;
      ASSERT_EQ(z32[i], static_cast<float>(z64[i])) << i;
    }
  }
}

TEST(Rng, FillsOfViewsWriteOnlyTheView) {
  Tensor t = Tensor::zeros({4, 3}, DType::f64);
  Tensor rows = t.slice(1, 3);
  ops::uniform(rows, 1, 0, 1.0, 2.0);
  std::vector<double> v = t.to_vector<double>();
  for (size_t i = 0; i < 12; ++i) {
    if (i < 3 || i >= 9) EXPECT_EQ(v[i], 0.0) << i;
    else EXPECT_GE(v[i], 1.0) << i;
  }
  EXPECT_EQ(rows.to_vector<double>(), uniform_fill(6, 1, 0, 1.0, 2.0));
}
