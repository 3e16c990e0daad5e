#pragma once
// Helpers shared by the .cu files: launch geometry, dtype dispatch, and the
// load/store convention (bf16 is loaded as float, computed in float, stored back).
#include <cstdint>
#include <type_traits>

#include "core/cuda/compute_type.h"  // compute_t: float for bf16, the type itself otherwise
#include "core/cuda/runtime.h"
#include "core/dtype.h"
#include "core/error.h"

namespace attnlab::cuda {

constexpr int kThreads = 256;

// Enough blocks to cover n once, capped: the kernels loop grid-stride, so a
// capped grid still visits every element while keeping launches cheap.
inline unsigned blocks_for(int64_t n) {
  constexpr int64_t kMaxBlocks = 65536;
  int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

__device__ __forceinline__ int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Any dtype to any other, with the CPU backend's rounding: values go through
// double (bf16 through float). Only int64 sources can round differently when
// converted directly, so only they take the detour.
template <class D, class S>
__host__ __device__ __forceinline__ D cast_to(S s) {
  if constexpr (std::is_same_v<D, S>) return s;
  else if constexpr (std::is_same_v<S, int64_t> && !std::is_same_v<D, double>)
    return cast_to<D>(static_cast<double>(s));
  else if constexpr (std::is_same_v<S, bf16>) return cast_to<D>(static_cast<float>(s));
  else if constexpr (std::is_same_v<D, bf16>) return bf16(static_cast<float>(s));
  else return static_cast<D>(s);
}

// Calls f.template operator()<T>() for a floating dtype (f32, f64, bf16).
template <class F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<bf16>();
    default: break;
  }
  throw Error(detail::cat("cuda::", op, ": unsupported dtype ", dtype_name(dt)));
}

// Calls f.template operator()<T>() for every dtype.
template <class F>
decltype(auto) dispatch_all(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::bf16: return f.template operator()<bf16>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::u16: return f.template operator()<uint16_t>();
  }
  throw Error(detail::cat("cuda::", op, ": unsupported dtype ", dtype_name(dt)));
}

}  // namespace attnlab::cuda
