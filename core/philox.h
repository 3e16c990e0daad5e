#pragma once
// Philox4x32-10 counter-based RNG (Salmon et al., "Parallel Random Numbers: As
// Easy as 1, 2, 3", SC 2011). Shared by the CPU and CUDA backends: element i of
// a fill at generator offset `off` always draws the same bits on either device.
#include <cmath>
#include <cstdint>

#include "core/macros.h"

namespace attnlab::philox {

struct U32x4 {
  uint32_t v[4];
};

ATTNLAB_HOST_DEVICE void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

ATTNLAB_HOST_DEVICE U32x4 philox4x32_10(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(0xD2511F53u, c0, hi0, lo0);
    mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits (exact in float32).
ATTNLAB_HOST_DEVICE double uniform01(uint32_t x) { return (x >> 8) * (1.0 / 16777216.0); }

// Element i of a stream draws from call `offset + i / 4`, lane i % 4.
ATTNLAB_HOST_DEVICE double uniform_at(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 r = philox4x32_10(offset + i / 4, seed);
  return uniform01(r.v[i % 4]);
}

// Box-Muller on lane pairs (0,1) and (2,3): even lanes take cos, odd lanes sin.
// Computed in double so float results agree bit for bit across libm and CUDA.
ATTNLAB_HOST_DEVICE double normal_at(uint64_t seed, uint64_t offset, uint64_t i) {
  U32x4 r = philox4x32_10(offset + i / 4, seed);
  int lane = static_cast<int>(i % 4), pair = lane / 2 * 2;
  double u1 = ((r.v[pair] >> 8) + 1) * (1.0 / 16777216.0);  // (0, 1]: log is finite
  double u2 = uniform01(r.v[pair + 1]);
  double radius = sqrt(-2.0 * log(u1));
  double theta = 6.283185307179586 * u2;
  return lane % 2 == 0 ? radius * cos(theta) : radius * sin(theta);
}

// The values fills store: lo + (hi - lo) u and mean + std z, each as one
// correctly rounded FMA so that host and device round identically.
ATTNLAB_HOST_DEVICE double uniform_value(uint64_t seed, uint64_t offset, uint64_t i, double lo, double hi) {
  return fma(hi - lo, uniform_at(seed, offset, i), lo);
}
ATTNLAB_HOST_DEVICE double normal_value(uint64_t seed, uint64_t offset, uint64_t i, double mean, double std) {
  return fma(std, normal_at(seed, offset, i), mean);
}

// Philox calls a fill of n elements consumes.
ATTNLAB_HOST_DEVICE uint64_t calls_for(uint64_t n) { return (n + 3) / 4; }

}  // namespace attnlab::philox
