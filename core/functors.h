#pragma once
// Element-wise math written once for both backends (DESIGN principle 2): the
// CPU loops in core/cpu/ and the CUDA kernels in core/cuda/ instantiate these
// templates; only the loop or launch around them differs.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/macros.h"

namespace attnlab {

enum class UnaryOp {
  gelu_tanh, relu, relu2, silu, sigmoid, softplus, tanh, exp, log, square, neg, sqrt, abs
};
enum class BinaryOp { add, sub, mul, div };

const char* unary_name(UnaryOp op);
const char* binary_name(BinaryOp op);

namespace fn {

// Float and double overloads of the C math functions that exist on host and device.
#define ATTNLAB_MATH_OVERLOAD(name)                                    \
  ATTNLAB_HOST_DEVICE float name##_(float x) { return ::name##f(x); } \
  ATTNLAB_HOST_DEVICE double name##_(double x) { return ::name(x); }
ATTNLAB_MATH_OVERLOAD(log)
ATTNLAB_MATH_OVERLOAD(log1p)
ATTNLAB_MATH_OVERLOAD(tanh)
ATTNLAB_MATH_OVERLOAD(sqrt)
#undef ATTNLAB_MATH_OVERLOAD

ATTNLAB_HOST_DEVICE double exp_(double x) { return ::exp(x); }

// float exp. On the host it is written out so that loops over it vectorize
// (libm's expf is a call the compiler cannot vectorize without -ffast-math):
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then Cephes' degree-6
// polynomial for e^r, scaled by 2^n through the exponent bits. Within 2 ulp of
// expf; overflow gives inf, underflow (below the normal range) gives 0.
ATTNLAB_HOST_DEVICE float exp_(float x) {
#if defined(__CUDA_ARCH__)
  return ::expf(x);
#else
  const float hi = 88.7228394f, lo = -87.3365478f;
  float xc = x > lo ? (x < 88.0f ? x : 88.0f) : lo;  // NaN -> lo: the int cast below stays defined
  // n = round(x / ln2) by adding and removing 1.5 * 2^23 (exact for |n| < 2^22):
  // gcc 12 will not vectorize floorf unless -fno-trapping-math, and a scalar
  // floorf made the whole loop around exp_ scalar.
  float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  float e = p * scale;
  e = x > hi ? __builtin_inff() : e;
  e = x < lo ? 0.0f : e;
  return x != x ? x : e;
#endif
}

template <class T>
ATTNLAB_HOST_DEVICE T sigmoid(T x) {
  // Split by sign so exp never overflows.
  if (x >= T(0)) return T(1) / (T(1) + exp_(-x));
  T e = exp_(x);
  return e / (T(1) + e);
}

template <class T>
ATTNLAB_HOST_DEVICE T softplus(T x) {
  // log(1 + e^x) = max(x, 0) + log1p(e^-|x|)
  return (x > T(0) ? x : T(0)) + log1p_(exp_(-(x < T(0) ? -x : x)));
}

// GELU, tanh approximation (Hendrycks & Gimpel, "Gaussian Error Linear Units"):
// 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). Computed as the equal
// x * sigmoid(2u), which needs only exp (vectorizable) instead of tanh.
template <class T>
ATTNLAB_HOST_DEVICE T gelu_tanh(T x) {
  const T k2 = T(2 * 0.7978845608028654), c = T(0.044715);
  return x * sigmoid(k2 * (x + c * x * x * x));
}

// d/dx [x s(2u)] = s + x s (1 - s) 2u',  u' = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
template <class T>
ATTNLAB_HOST_DEVICE T gelu_tanh_grad(T x) {
  const T k2 = T(2 * 0.7978845608028654), c = T(0.044715);
  T s = sigmoid(k2 * (x + c * x * x * x));
  return s + x * s * (T(1) - s) * k2 * (T(1) + T(3) * c * x * x);
}

template <UnaryOp OP, class T>
ATTNLAB_HOST_DEVICE T unary(T x) {
  if constexpr (OP == UnaryOp::gelu_tanh) return gelu_tanh(x);
  else if constexpr (OP == UnaryOp::relu) return x > T(0) ? x : T(0);
  else if constexpr (OP == UnaryOp::relu2) return x > T(0) ? x * x : T(0);
  else if constexpr (OP == UnaryOp::silu) return x * sigmoid(x);
  else if constexpr (OP == UnaryOp::sigmoid) return sigmoid(x);
  else if constexpr (OP == UnaryOp::softplus) return softplus(x);
  else if constexpr (OP == UnaryOp::tanh) return tanh_(x);
  else if constexpr (OP == UnaryOp::exp) return exp_(x);
  else if constexpr (OP == UnaryOp::log) return log_(x);
  else if constexpr (OP == UnaryOp::square) return x * x;
  else if constexpr (OP == UnaryOp::neg) return -x;
  else if constexpr (OP == UnaryOp::sqrt) return sqrt_(x);
  else if constexpr (OP == UnaryOp::abs) return x < T(0) ? -x : x;
}

// d unary(x) / dx
template <UnaryOp OP, class T>
ATTNLAB_HOST_DEVICE T unary_grad(T x) {
  if constexpr (OP == UnaryOp::gelu_tanh) return gelu_tanh_grad(x);
  else if constexpr (OP == UnaryOp::relu) return x > T(0) ? T(1) : T(0);
  else if constexpr (OP == UnaryOp::relu2) return x > T(0) ? T(2) * x : T(0);
  else if constexpr (OP == UnaryOp::silu) {
    T s = sigmoid(x);
    return s * (T(1) + x * (T(1) - s));
  } else if constexpr (OP == UnaryOp::sigmoid) {
    T s = sigmoid(x);
    return s * (T(1) - s);
  } else if constexpr (OP == UnaryOp::softplus) return sigmoid(x);
  else if constexpr (OP == UnaryOp::tanh) {
    T t = tanh_(x);
    return T(1) - t * t;
  } else if constexpr (OP == UnaryOp::exp) return exp_(x);
  else if constexpr (OP == UnaryOp::log) return T(1) / x;
  else if constexpr (OP == UnaryOp::square) return T(2) * x;
  else if constexpr (OP == UnaryOp::neg) return T(-1);
  else if constexpr (OP == UnaryOp::sqrt) return T(0.5) / sqrt_(x);
  else if constexpr (OP == UnaryOp::abs) return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

template <BinaryOp OP, class T>
ATTNLAB_HOST_DEVICE T binary(T a, T b) {
  if constexpr (OP == BinaryOp::add) return a + b;
  else if constexpr (OP == BinaryOp::sub) return a - b;
  else if constexpr (OP == BinaryOp::mul) return a * b;
  else if constexpr (OP == BinaryOp::div) return a / b;
}

}  // namespace fn

// Calls f.template operator()<OP>() with OP the compile-time value of `op`:
// one runtime switch outside the loop, a specialised loop inside.
template <class F>
decltype(auto) dispatch_unary(UnaryOp op, F&& f) {
  switch (op) {
#define ATTNLAB_UNARY_CASE(name) \
  case UnaryOp::name: return f.template operator()<UnaryOp::name>();
    ATTNLAB_UNARY_CASE(gelu_tanh) ATTNLAB_UNARY_CASE(relu) ATTNLAB_UNARY_CASE(relu2)
    ATTNLAB_UNARY_CASE(silu) ATTNLAB_UNARY_CASE(sigmoid) ATTNLAB_UNARY_CASE(softplus)
    ATTNLAB_UNARY_CASE(tanh) ATTNLAB_UNARY_CASE(exp) ATTNLAB_UNARY_CASE(log)
    ATTNLAB_UNARY_CASE(square) ATTNLAB_UNARY_CASE(neg) ATTNLAB_UNARY_CASE(sqrt)
    ATTNLAB_UNARY_CASE(abs)
#undef ATTNLAB_UNARY_CASE
  }
  return f.template operator()<UnaryOp::neg>();  // unreachable
}

template <class F>
decltype(auto) dispatch_binary(BinaryOp op, F&& f) {
  switch (op) {
    case BinaryOp::add: return f.template operator()<BinaryOp::add>();
    case BinaryOp::sub: return f.template operator()<BinaryOp::sub>();
    case BinaryOp::mul: return f.template operator()<BinaryOp::mul>();
    case BinaryOp::div: return f.template operator()<BinaryOp::div>();
  }
  return f.template operator()<BinaryOp::add>();  // unreachable
}

}  // namespace attnlab
