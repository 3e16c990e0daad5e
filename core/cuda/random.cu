// Philox fills. Element i draws philox::uniform_at / normal_at(seed, offset, i),
// exactly as the CPU backend does, so a seed gives the same tensor on either device.
#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"
#include "core/philox.h"

namespace attnlab::cuda {

namespace {

template <class T>
__global__ void uniform_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double lo,
                               double hi) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    out[i] = cast_to<T>(philox::uniform_value(seed, offset, static_cast<uint64_t>(i), lo, hi));
  }
}

template <class T>
__global__ void normal_kernel(T* out, int64_t n, uint64_t seed, uint64_t offset, double mean,
                              double std) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) {
    out[i] = cast_to<T>(philox::normal_value(seed, offset, static_cast<uint64_t>(i), mean, std));
  }
}

}  // namespace

void uniform(Tensor& t, uint64_t seed, uint64_t offset, double lo, double hi) {
  int64_t n = t.numel();
  if (n == 0) return;
  DeviceGuard guard(t.device().index);
  dispatch_float(t.dtype(), "uniform", [&]<class T>() {
    uniform_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(t.raw_data()), n, seed, offset,
                                                   lo, hi);
    ATTNLAB_CUDA_CHECK_LAUNCH("uniform_kernel");
  });
}

void normal(Tensor& t, uint64_t seed, uint64_t offset, double mean, double std) {
  int64_t n = t.numel();
  if (n == 0) return;
  DeviceGuard guard(t.device().index);
  dispatch_float(t.dtype(), "normal", [&]<class T>() {
    normal_kernel<T><<<blocks_for(n), kThreads>>>(static_cast<T*>(t.raw_data()), n, seed, offset,
                                                  mean, std);
    ATTNLAB_CUDA_CHECK_LAUNCH("normal_kernel");
  });
}

}  // namespace attnlab::cuda
