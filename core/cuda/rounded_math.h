#pragma once
// Rounded IEEE arithmetic that nvcc never contracts into FMAs: on the device
// the __f*_rn / __d*_rn intrinsics, on the host the plain operators. Kernels
// that must repeat a CPU loop's operations in its order (the optimizers, RoPE)
// use these, so f32/f64 results match the CPU's to rounding (bit for bit where
// the host compiler does not contract either).
#include <cmath>
#include <type_traits>

#include "core/macros.h"

namespace attnlab::cuda {

namespace rn {
template <class T>
ATTNLAB_HOST_DEVICE T mul(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
template <class T>
ATTNLAB_HOST_DEVICE T add(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
template <class T>
ATTNLAB_HOST_DEVICE T sub(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fsub_rn(a, b);
  else return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
template <class T>
ATTNLAB_HOST_DEVICE T div(T a, T b) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fdiv_rn(a, b);
  else return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}
template <class T>
ATTNLAB_HOST_DEVICE T sqrt(T a) {
#if defined(__CUDA_ARCH__)
  if constexpr (std::is_same_v<T, float>) return __fsqrt_rn(a);
  else return __dsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}
}  // namespace rn

}  // namespace attnlab::cuda
