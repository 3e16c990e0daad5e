#include <cstring>

#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"
#include "core/philox.h"

namespace attnlab::cpu {

namespace {
// Every dtype converts through double, except bf16 which rounds from float.
template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>) return bf16(static_cast<float>(v));
  else return static_cast<T>(v);
}
template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16>) return static_cast<float>(v);
  else return static_cast<double>(v);
}
}  // namespace

void fill(Tensor& t, double value) {
  dispatch_any(t.dtype(), [&]<class T>() {
    T v = from_double<T>(value);
    T* p = t.data<T>();
    std::fill(p, p + t.numel(), v);
  });
}

void copy(Tensor& dst, const Tensor& src) {
  if (dst.dtype() == src.dtype()) {
    if (dst.raw_data() != src.raw_data()) std::memmove(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  int64_t n = dst.numel();
  dispatch_any(src.dtype(), [&]<class S>() {
    dispatch_any(dst.dtype(), [&]<class D>() {
      const S* s = src.data<S>();
      D* d = dst.data<D>();
      if constexpr (std::is_same_v<S, float> && std::is_same_v<D, bf16>) {
        for (int64_t i = 0; i < n; ++i) d[i] = bf16(s[i]);  // one rounding, not two
      } else {
        for (int64_t i = 0; i < n; ++i) d[i] = from_double<D>(to_double(s[i]));
      }
    });
  });
}

namespace {
template <class Draw>
void philox_fill(Tensor& t, Draw draw) {
  int64_t n = t.numel();
  dispatch_any(t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
#pragma omp parallel for schedule(static) if (n > kParallelGrain / 8)
    for (int64_t i = 0; i < n; ++i) p[i] = from_double<T>(draw(static_cast<uint64_t>(i)));
  });
}
}  // namespace

// Computed in double and cast once to the dtype, exactly as the CUDA kernels do.
void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  philox_fill(t, [=](uint64_t i) { return philox::uniform_value(seed, offset, i, lo, hi); });
}

void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  philox_fill(t, [=](uint64_t i) { return philox::normal_value(seed, offset, i, mean, std); });
}

}  // namespace attnlab::cpu
