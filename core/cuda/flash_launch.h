#pragma once
// Host-side launch helpers of the fused attention (flash_attention.cu,
// flash_attention_backward.cu): the shared-memory opt-in and the dispatch of
// the per-thread output-column bucket.
#include <cuda_runtime.h>

#include <cstdint>

#include "core/cuda/flash_geometry.h"
#include "core/cuda/runtime.h"
#include "core/dtype.h"
#include "core/error.h"

namespace attnlab::cuda::flash {

// Raises `kernel`'s dynamic shared-memory limit past the default 48 KB when
// `bytes` needs it, and fails with one clear error when the device cannot give
// that much (very wide heads, mostly in f64).
template <class K>
void prepare_smem(K* kernel, int64_t bytes, int device, const char* op, int64_t D, int64_t Dv, DType dt) {
  int max_optin = 0;
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  ATTNLAB_CHECK(bytes <= max_optin, op, " (CUDA): head dims D=", D, ", Dv=", Dv, " in ", dtype_name(dt), " need ",
                bytes, " bytes of shared memory per block; this device allows ", max_optin);
  if (bytes > 48 * 1024)
    ATTNLAB_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// Whether `device` has bf16 tensor cores (sm_80 and newer): the WMMA kernels' condition.
inline bool has_bf16_tensor_cores(int device) {
  int major = 0;
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major >= 8;
}

// Calls fn.template operator()<kD, kDv>() for the tensor-core kernels' head
// dims (mma_forward_covers(D, Dv) must hold).
template <class F>
void dispatch_mma_dims(int64_t D, int64_t Dv, F&& fn) {
  if (D == 64 && Dv == 64) fn.template operator()<64, 64>();
  else if (D == 64) fn.template operator()<64, 128>();
  else if (Dv == 64) fn.template operator()<128, 64>();
  else fn.template operator()<128, 128>();
}

// Calls f.template operator()<kCols>() with kCols = cols_per_thread(width), a
// compile-time register count for the kernels' output accumulators.
template <class F>
void dispatch_cols(int64_t width, F&& f) {
  switch (cols_per_thread(width)) {
    case 8: return f.template operator()<8>();
    case 16: return f.template operator()<16>();
    case 32: return f.template operator()<32>();
    default: return f.template operator()<64>();
  }
}
static_assert(kFlashMaxCols / kFlashLanesPerRow == 64, "dispatch_cols's largest bucket");

}  // namespace attnlab::cuda::flash
