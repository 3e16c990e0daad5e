// DType helpers and bfloat16 rounding: nearest-even on exact ties, up/down,
// infinities, NaN, signed zero, the largest finite values, and agreement of
// Tensor::to(bf16) with bf16(float).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.h"

using namespace attnlab;

namespace {

float f_from_bits(uint32_t u) { return std::bit_cast<float>(u); }
uint32_t bits_of(float f) { return std::bit_cast<uint32_t>(f); }
uint16_t round_bits(uint32_t u) { return bf16(f_from_bits(u)).bits; }

// Reference: round-to-nearest-even of a finite float's top 16 bits, done by
// comparing the dropped half with 0x8000.
uint16_t reference_round(uint32_t u) {
  uint32_t upper = u >> 16, lower = u & 0xffffu;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) ++upper;
  return static_cast<uint16_t>(upper);
}

}  // namespace

TEST(DType, SizesNamesAndParse) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::f64), 8u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::i32), 4u);
  EXPECT_EQ(dtype_size(DType::i64), 8u);
  EXPECT_EQ(dtype_size(DType::u16), 2u);
  for (DType t : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u16})
    EXPECT_EQ(parse_dtype(dtype_name(t)), t);
  EXPECT_STREQ(dtype_name(DType::bf16), "bf16");
  EXPECT_TRUE(is_floating(DType::f32));
  EXPECT_TRUE(is_floating(DType::f64));
  EXPECT_TRUE(is_floating(DType::bf16));
  EXPECT_FALSE(is_floating(DType::i32));
  EXPECT_FALSE(is_floating(DType::i64));
  EXPECT_FALSE(is_floating(DType::u16));
  EXPECT_THROW(parse_dtype("float32"), Error);
  EXPECT_THROW(parse_dtype(""), Error);
  EXPECT_EQ(dtype_v<float>, DType::f32);
  EXPECT_EQ(dtype_v<bf16>, DType::bf16);
  EXPECT_EQ(dtype_v<uint16_t>, DType::u16);
  EXPECT_EQ(sizeof(bf16), 2u);
}

TEST(BF16, ExactValuesRoundTrip) {
  for (float f : {0.0f, 1.0f, -1.0f, 2.0f, 0.5f, 1.5f, -3.25f, 256.0f, 1.0f / 128.0f, -0.0f}) {
    bf16 b(f);
    EXPECT_EQ(static_cast<float>(b), f);
    EXPECT_EQ(b.bits, bits_of(f) >> 16);
  }
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(bf16(-2.0f).bits, 0xc000);
  EXPECT_EQ(static_cast<float>(bf16::from_bits(0x4049)), 3.140625f);
}

TEST(BF16, TiesRoundToEven) {
  // Lower half exactly 0x8000: even upper part stays, odd upper part goes up.
  EXPECT_EQ(round_bits(0x3f808000u), 0x3f80);  // 1 + 2^-8: even -> down to 1.0
  EXPECT_EQ(round_bits(0x3f818000u), 0x3f82);  // odd -> up
  EXPECT_EQ(round_bits(0x40408000u), 0x4040);
  EXPECT_EQ(round_bits(0x40418000u), 0x4042);
  EXPECT_EQ(round_bits(0xbf808000u), 0xbf80);  // negative ties too
  EXPECT_EQ(round_bits(0xbf818000u), 0xbf82);
  // A tie whose carry crosses into the exponent: 0x3fff8000 -> 0x4000 (2.0).
  EXPECT_EQ(round_bits(0x3fff8000u), 0x4000);
  EXPECT_EQ(static_cast<float>(bf16(f_from_bits(0x3fff8000u))), 2.0f);
  // Subnormal ties.
  EXPECT_EQ(round_bits(0x00008000u), 0x0000);
  EXPECT_EQ(round_bits(0x00018000u), 0x0002);
}

TEST(BF16, RoundsUpAndDown) {
  EXPECT_EQ(round_bits(0x3f808001u), 0x3f81);  // just above the tie: up
  EXPECT_EQ(round_bits(0x3f807fffu), 0x3f80);  // just below: down
  EXPECT_EQ(round_bits(0x3f81ffffu), 0x3f82);
  EXPECT_EQ(round_bits(0x3f810001u), 0x3f81);
  EXPECT_EQ(round_bits(0xbf80c000u), 0xbf81);  // magnitude rounds up for negatives
  EXPECT_EQ(round_bits(0xbf804000u), 0xbf80);
  EXPECT_EQ(bf16(0.1f).bits, 0x3dcd);  // 0x3dcccccd
  EXPECT_EQ(bf16(1.0f / 3.0f).bits, 0x3eab);  // 0x3eaaaaab
  // The smallest subnormal floats round to zero.
  EXPECT_EQ(round_bits(0x00000001u), 0x0000);
  EXPECT_EQ(round_bits(0x80000001u), 0x8000);
}

TEST(BF16, MatchesReferenceOnManyFiniteFloats) {
  // Sweep lower halves across a few upper parts (even and odd, both signs, small and large).
  for (uint32_t upper : {0x0000u, 0x0001u, 0x3f80u, 0x3f81u, 0x4b7fu, 0x7f7eu, 0x8001u, 0xc2c3u})
    for (uint32_t lower = 0; lower <= 0xffffu; lower += 0x101u) {
      uint32_t u = (upper << 16) | lower;
      ASSERT_EQ(round_bits(u), reference_round(u)) << std::hex << u;
    }
  for (uint32_t lower : {0x7fffu, 0x8000u, 0x8001u})
    for (uint32_t upper : {0x3f80u, 0x3f81u}) {
      uint32_t u = (upper << 16) | lower;
      EXPECT_EQ(round_bits(u), reference_round(u)) << std::hex << u;
    }
}

TEST(BF16, Infinities) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16(inf).bits, 0x7f80);
  EXPECT_EQ(bf16(-inf).bits, 0xff80);
  EXPECT_EQ(static_cast<float>(bf16(inf)), inf);
  EXPECT_EQ(static_cast<float>(bf16(-inf)), -inf);
}

TEST(BF16, NaNStaysNaN) {
  // Quiet and signalling NaNs, including payloads only in the dropped low bits
  // (a truncation would turn those into infinity).
  for (uint32_t u : {0x7fc00000u, 0x7f800001u, 0x7f80ffffu, 0x7fffffffu, 0xffc00000u, 0xff800001u, 0x7fbfffffu}) {
    bf16 b(f_from_bits(u));
    EXPECT_TRUE(std::isnan(static_cast<float>(b))) << std::hex << u << " -> " << b.bits;
    EXPECT_EQ(b.bits & 0x8000u, (u >> 16) & 0x8000u) << "sign kept";
  }
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(std::numeric_limits<float>::quiet_NaN()))));
}

TEST(BF16, SignedZero) {
  EXPECT_EQ(bf16(0.0f).bits, 0x0000);
  EXPECT_EQ(bf16(-0.0f).bits, 0x8000);
  float back = static_cast<float>(bf16(-0.0f));
  EXPECT_EQ(back, 0.0f);
  EXPECT_TRUE(std::signbit(back));
}

TEST(BF16, LargestFiniteValues) {
  // 0x7f7f is the largest finite bf16 (about 3.39e38).
  EXPECT_EQ(static_cast<float>(bf16::from_bits(0x7f7f)), f_from_bits(0x7f7f0000u));
  EXPECT_EQ(round_bits(0x7f7f0000u), 0x7f7f);
  EXPECT_EQ(round_bits(0x7f7f7fffu), 0x7f7f);  // below the halfway point: stays finite
  EXPECT_EQ(round_bits(0x7f7f8000u), 0x7f80);  // tie with odd upper: overflows to inf
  // FLT_MAX is above bf16's halfway point to 2^128: rounds to infinity (IEEE overflow).
  EXPECT_EQ(bf16(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_EQ(bf16(-std::numeric_limits<float>::max()).bits, 0xff80);
  EXPECT_EQ(round_bits(0xff7f7fffu), 0xff7f);
  // The largest even-mantissa value's tie stays finite.
  EXPECT_EQ(round_bits(0x7f7e8000u), 0x7f7e);
  // Smallest normal and subnormal bf16 values are exact.
  EXPECT_EQ(round_bits(0x00800000u), 0x0080);
  EXPECT_EQ(static_cast<float>(bf16::from_bits(0x0001)), f_from_bits(0x00010000u));
}

TEST(BF16, TensorConversionAgreesWithScalarConversion) {
  std::vector<uint32_t> patterns = {0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0x7f7f7fffu,
                                    0x7f7f8000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                                    0x80000000u, 0x00000000u, 0x00018000u, 0xbf80c000u, 0x3dcccccdu};
  std::vector<float> fs;
  for (uint32_t u : patterns) fs.push_back(f_from_bits(u));
  // Plus random-looking floats over many magnitudes.
  uint32_t x = 12345;
  for (int i = 0; i < 2000; ++i) {
    x = x * 1664525u + 1013904223u;
    uint32_t u = x & 0xbfffffffu;  // finite: clear the top exponent bit
    fs.push_back(f_from_bits(u));
  }
  std::vector<bf16> got = Tensor::from(fs).to(DType::bf16).to_vector<bf16>();
  ASSERT_EQ(got.size(), fs.size());
  for (size_t i = 0; i < fs.size(); ++i)
    ASSERT_EQ(got[i].bits, bf16(fs[i]).bits) << "float bits " << std::hex << bits_of(fs[i]);
  // Filling a bf16 tensor rounds the same way.
  for (size_t i = 0; i < patterns.size(); ++i) {
    Tensor t = Tensor::empty({1}, DType::bf16);
    t.fill_(static_cast<double>(fs[i]));
    EXPECT_EQ(t.to_vector<bf16>()[0].bits, bf16(fs[i]).bits) << std::hex << patterns[i];
  }
  // bf16 -> f32 is exact: widening the bits.
  std::vector<float> back = Tensor::from(got).to(DType::f32).to_vector<float>();
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(back[i])) continue;
    ASSERT_EQ(bits_of(back[i]), static_cast<uint32_t>(got[i].bits) << 16);
  }
}

TEST(BF16, FromDoubleRoundsThroughFloat) {
  // f64 -> bf16 converts to float first (as PyTorch does). Values exactly
  // representable in float are therefore rounded once, like bf16(float).
  std::vector<double> d = {1.00390625, 1.01171875, 3.0e38, -1.5, 0.1};
  std::vector<bf16> got = Tensor::from(d).to(DType::bf16).to_vector<bf16>();
  for (size_t i = 0; i < d.size(); ++i) EXPECT_EQ(got[i].bits, bf16(static_cast<float>(d[i])).bits);
}
