#pragma once
// Small helpers shared by the core and autograd tests: random tensors, naive
// element access through double, and checks on attnlab::Error messages.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace attnlab::testing {

inline Tensor randn(const Shape& shape, uint64_t seed, DType dtype = DType::f64, double std = 1.0) {
  Generator gen(seed);
  return Tensor::empty(shape, dtype).normal_(gen, 0.0, std);
}

inline Tensor randu(const Shape& shape, uint64_t seed, double lo, double hi, DType dtype = DType::f64) {
  Generator gen(seed);
  return Tensor::empty(shape, dtype).uniform_(gen, lo, hi);
}

// Values as doubles, whatever the dtype.
inline std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Row-major strides of a contiguous shape.
inline std::vector<int64_t> strides_of(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// Multi-index of flat position i.
inline std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = s[d] ? i % s[d] : 0;
    i = s[d] ? i / s[d] : 0;
  }
  return idx;
}

// Flat position of multi-index `idx` (aligned to the right of `s`, with
// broadcasting: a dim of 1 reads position 0).
inline int64_t ravel_broadcast(const std::vector<int64_t>& idx, const Shape& s) {
  std::vector<int64_t> st = strides_of(s);
  int64_t off = 0;
  size_t lead = idx.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d) off += (s[d] == 1 ? 0 : idx[lead + d]) * st[d];
  return off;
}

// |a - b| <= atol + rtol * |b| element-wise, with a message naming the first mismatch.
inline ::testing::AssertionResult all_close(const std::vector<double>& a, const std::vector<double>& b,
                                            double atol, double rtol = 0.0) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " vs " << b.size();
  for (size_t i = 0; i < a.size(); ++i) {
    bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    bool same_inf = std::isinf(a[i]) && a[i] == b[i];
    if (both_nan || same_inf) continue;
    if (!(std::fabs(a[i] - b[i]) <= atol + rtol * std::fabs(b[i])))
      return ::testing::AssertionFailure() << "element " << i << ": " << a[i] << " vs expected " << b[i]
                                           << " (atol " << atol << ", rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_close(const Tensor& a, const std::vector<double>& b, double atol,
                                            double rtol = 0.0) {
  return all_close(values(a), b, atol, rtol);
}

// Tolerance for a dtype's rounding (results of short sums of O(1) terms).
inline double tol_for(DType t) { return t == DType::f64 ? 1e-12 : 2e-5; }

// Runs `fn` and checks that it throws attnlab::Error with a one-line message
// containing every string in `parts` (the message is streamed on success).
// tests/test_util.h has the same check as the EXPECT_ERROR_MENTIONS macro;
// this form returns an AssertionResult so it composes with EXPECT_TRUE.
inline ::testing::AssertionResult throws_error(const std::function<void()>& fn,
                                               std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.find('\n') != std::string::npos)
      return ::testing::AssertionFailure() << "multi-line message \"" << msg << "\"";
    for (const std::string& p : parts)
      if (msg.find(p) == std::string::npos)
        return ::testing::AssertionFailure() << "message \"" << msg << "\" lacks \"" << p << "\"";
    return ::testing::AssertionSuccess() << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-attnlab exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw";
}

}  // namespace attnlab::testing
