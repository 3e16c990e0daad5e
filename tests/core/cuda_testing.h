#pragma once
// Helpers for the tests that run the CUDA backend against the CPU reference
// (tests/core/test_cuda*.cpp, tests/layers/test_gpt_cuda.cpp). Every such test
// starts with SKIP_WITHOUT_CUDA(), so it skips cleanly on a machine without a device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/tensor.h"

#define SKIP_WITHOUT_CUDA() \
  if (!attnlab::cuda_available()) GTEST_SKIP() << "no CUDA device"

namespace attnlab::cuda_testing {

inline const Device kGpu = Device::cuda();

// A CPU tensor of uniform values in [lo, hi).
inline Tensor cpu_uniform(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype = DType::f32) {
  Tensor t = Tensor::empty(shape, dtype);
  ops::uniform(t, seed, 0, lo, hi);
  return t;
}

// Raw bytes of any tensor, brought to the host.
inline std::vector<unsigned char> bytes_of(const Tensor& t) {
  Tensor h = t.to(Device::cpu());
  std::vector<unsigned char> out(h.nbytes());
  if (!out.empty()) std::memcpy(out.data(), h.raw_data(), out.size());
  return out;
}

inline void expect_bits_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.numel(), want.numel()) << what;
  auto g = bytes_of(got), w = bytes_of(want);
  size_t es = dtype_size(got.dtype());
  int64_t first = -1, count = 0;
  for (size_t i = 0; i < g.size(); i += es)
    if (std::memcmp(&g[i], &w[i], es) != 0) {
      if (first < 0) first = static_cast<int64_t>(i / es);
      ++count;
    }
  if (count) {
    auto gv = got.to_vector<double>(), wv = want.to_vector<double>();
    ADD_FAILURE() << what << ": " << count << " of " << got.numel() << " elements differ; first at " << first
                  << ": got " << gv[static_cast<size_t>(first)] << ", want " << wv[static_cast<size_t>(first)];
  }
}

// |got - want| <= atol + rtol * |want| elementwise; NaNs must match NaNs and
// infinities the same infinity.
inline void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol, const std::string& what) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  int64_t bad = 0;
  size_t first = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok = std::isnan(w[i])   ? std::isnan(g[i])
              : std::isinf(w[i]) ? g[i] == w[i]
                                 : std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]);
    if (!ok && bad++ == 0) first = i;
  }
  if (bad)
    ADD_FAILURE() << what << ": " << bad << " of " << g.size() << " elements out of tolerance; first at " << first
                  << ": got " << g[first] << ", want " << w[first];
}

inline std::string tag(const char* op, DType dt) { return std::string(op) + " " + dtype_name(dt); }

}  // namespace attnlab::cuda_testing
