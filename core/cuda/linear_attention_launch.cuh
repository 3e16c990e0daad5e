#pragma once
// Launch plumbing shared by linear_attention.cu and linear_attention_delta.cu:
// the thread-block executor of the phases in linear_attention_chunks.h, the shape
// of a call, the scratch's placement in shared memory, and the bf16 detour.
#include <algorithm>

#include "core/cuda/block_reduce.cuh"
#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"
#include "core/cuda/linear_attention_chunks.h"

namespace attnlab::cuda::linattn {

// One thread block runs one sequence: a phase's elements are spread over the
// threads (element i on thread i mod blockDim.x), then the block waits, so the
// next phase sees every write (shared and global) of this one. Host-device only
// so that the shared __host__ __device__ algorithms may call it; it is only ever
// run on the device. blockDim.x must be kThreads (a power of two, for block_sum).
struct BlockExecutor {
  template <class F>
  __host__ __device__ void parallel(int64_t n, F&& f) const {
#if defined(__CUDA_ARCH__)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) f(i);
    __syncthreads();
#else
    (void)n;
    (void)f;
#endif
  }

  // Every thread's strided partial sum, then block_sum's fixed tree.
  template <class F>
  __host__ __device__ auto sum(int64_t n, F&& f) const -> decltype(f(int64_t(0))) {
    using V = decltype(f(int64_t(0)));
#if defined(__CUDA_ARCH__)
    V acc = V(0);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += f(i);
    return block_sum(acc);
#else
    (void)n;
    (void)f;
    return V(0);
#endif
  }
};

// This block's scratch: the first `split` elements in dynamic shared memory (as
// many as the launch gave), the rest in its slot of the global workspace.
template <class R>
__device__ Scratch<R> block_scratch(R* ws, int64_t ws_stride, int64_t split) {
  extern __shared__ __align__(16) unsigned char linattn_smem[];
  return {reinterpret_cast<R*>(linattn_smem), ws + static_cast<int64_t>(blockIdx.x) * ws_stride, split};
}

inline GateKind gate_kind(const Tensor& g, const Tensor& q) {
  if (!g.defined()) return GateKind::none;
  return g.dim() == q.dim() ? GateKind::diag : GateKind::scalar;
}

// q [..., T, Dk], v [..., T, Dv]; chunks of min(chunk, T) steps as the CPU.
inline ChunkDims chunk_dims(const Tensor& q, const Tensor& v, const Tensor& g, int64_t chunk) {
  const int64_t T = q.size(-2);
  return {T, q.size(-1), v.size(-1), std::min(chunk, std::max<int64_t>(T, 1)), gate_kind(g, q)};
}

// Independent sequences: the product of q's dims before [T, Dk].
inline int64_t sequences(const Tensor& q) {
  int64_t n = 1;
  for (int64_t d = 0; d + 2 < q.dim(); ++d) n *= q.size(d);
  return n;
}

// Sequences (batch x heads, times value slices in the forwards): one block each on
// grid x (y and z stop at 65535).
inline unsigned sequence_blocks(int64_t blocks, const char* op) {
  ATTNLAB_CHECK(blocks <= 0x7fffffff, "cuda::", op, ": ", blocks,
                " blocks (sequences x value slices) exceed the grid's 2^31 - 1");
  return static_cast<unsigned>(blocks);
}

// The forwards' value split: about two blocks per SM of the current device.
inline ValueSplit forward_split(int64_t N, int64_t Dv) {
  int dev = 0, sms = 0;
  ATTNLAB_CUDA_CHECK(cudaGetDevice(&dev));
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return value_split(N, Dv, 2 * static_cast<int64_t>(sms));
}

// The shared/global split of `kernel`'s scratch layout (`Layout`: GlaWorkspace or
// DeltaWorkspace) for elements of `elem_bytes`, raising the kernel's dynamic
// shared memory limit past the default 48 KiB when needed.
template <class Kernel, class Layout>
int64_t plan_shared(Kernel* kernel, const Layout& w, int64_t elem_bytes) {
  int dev = 0, optin = 0;
  ATTNLAB_CUDA_CHECK(cudaGetDevice(&dev));
  ATTNLAB_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaFuncAttributes attr{};
  ATTNLAB_CUDA_CHECK(cudaFuncGetAttributes(&attr, kernel));
  const int64_t split = shared_split(w.state_end, w.shared_end, elem_bytes, static_cast<int64_t>(attr.sharedSizeBytes),
                                     optin);
  ATTNLAB_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(split * elem_bytes)));
  return split;
}

template <class R>
const R* ptr_or_null(const Tensor& t) {
  return t.defined() ? static_cast<const R*>(t.raw_data()) : nullptr;
}

// An empty sequence (T = 0): the final state is the initial one, or zeros.
inline void pass_initial_state(const Tensor& state0, Tensor& state) {
  if (state0.defined()) cuda::copy(state, state0);
  else cuda::fill(state, 0.0);
}

// bf16 runs in f32: inputs widened once, outputs narrowed once (the kernels
// keep per-chunk products and the state in the compute type anyway).
inline Tensor widened(const Tensor& t) { return t.defined() ? t.to(DType::f32) : Tensor(); }
inline Tensor f32_like(const Tensor& t) {
  return t.defined() ? Tensor::empty(t.shape(), DType::f32, t.device()) : Tensor();
}

}  // namespace attnlab::cuda::linattn
