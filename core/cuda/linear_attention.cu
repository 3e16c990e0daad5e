// Chunkwise gated linear attention on the GPU (ops::linear_attention_chunked and
// its backward). One thread block per (batch, head) sequence walks the chunks in
// order with the running state [Dk, Dv] in shared memory (or its workspace slot
// when too big); inside a chunk every phase spreads its outputs over the block's
// threads. With few sequences the forward also splits the value columns over
// blocks (each recomputes the chunk's scores; results do not change). The math is
// linear_attention_chunks.h's gla_forward / gla_backward
// (Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
// Training", eqs. 4-6), the same code the host tests run. The backward stores no
// states: a forward sweep gives the carried state's part of dQ, a reverse sweep
// carries dS, as the CPU kernel (core/cpu/linear_attention.cpp).
#include "core/cuda/linear_attention_launch.cuh"

namespace attnlab::cuda {

namespace {

using namespace linattn;

template <class R>
__global__ void __launch_bounds__(kThreads)
    gla_forward_kernel(ChunkDims dm, ValueSplit split, const R* q, const R* k, const R* v, const R* g,
                       const R* s0, R* o, R* state, R* ws, int64_t ws_stride, bool state_in_shared) {
  const int64_t b = blockIdx.x, n = b / split.slices;
  const int64_t oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, os = n * dm.state_size();
  R* mine = ws + b * ws_stride;
  R* S = running_state(mine + GlaWorkspace(dm).state, state_in_shared);
  BlockExecutor ex;
  gla_forward(ex, dm, split.slice(b - n * split.slices), q + oq, k + oq, v + ov,
              g ? g + n * dm.T * dm.gate_width() : nullptr, s0 ? s0 + os : nullptr, o + ov, state + os, S, mine);
}

template <class R>
__global__ void __launch_bounds__(kThreads)
    gla_backward_kernel(ChunkDims dm, const R* q, const R* k, const R* v, const R* g, const R* s0, const R* dout,
                        R* dq, R* dk, R* dv, R* dg, R* ws, int64_t ws_stride, bool state_in_shared) {
  const int64_t n = blockIdx.x, oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, og = n * dm.T * dm.gate_width();
  R* mine = ws + n * ws_stride;
  R* S = running_state(mine + GlaWorkspace(dm).state, state_in_shared);
  BlockExecutor ex;
  gla_backward(ex, dm, q + oq, k + oq, v + ov, g ? g + og : nullptr, s0 ? s0 + n * dm.state_size() : nullptr,
               dout + ov, dq + oq, dk + oq, dv + ov, dg ? dg + og : nullptr, S, mine);
}

}  // namespace

void linear_attention_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, int64_t chunk,
                              const Tensor& state0, Tensor& o, Tensor& state) {
  const ChunkDims dm = chunk_dims(q, v, g, chunk);
  const int64_t N = sequences(q);
  if (dm.T == 0) {
    if (state0.defined()) cuda::copy(state, state0);
    else cuda::fill(state, 0.0);
    return;
  }
  if (N == 0) return;
  if (q.dtype() == DType::bf16) {
    Tensor o32 = f32_like(o), s32 = f32_like(state);
    linear_attention_chunked(widened(q), widened(k), widened(v), widened(g), chunk, widened(state0), o32, s32);
    cuda::copy(o, o32);
    cuda::copy(state, s32);
    return;
  }
  DeviceGuard guard(q.device().index);
  dispatch_float(q.dtype(), "linear_attention_chunked", [&]<class R>() {
    if constexpr (!std::is_same_v<R, bf16>) {
      const ValueSplit split = forward_split(N, dm.Dv);
      const int64_t ws_stride = GlaWorkspace(dm).size;
      Tensor ws = Tensor::empty({N * split.slices, ws_stride}, q.dtype(), q.device());
      auto* kernel = gla_forward_kernel<R>;
      const size_t smem = plan_state_smem(kernel, dm.Dk * split.W * static_cast<int64_t>(sizeof(R)));
      kernel<<<sequence_blocks(N * split.slices, "linear_attention_chunked"), kThreads, smem>>>(
          dm, split, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(g),
          ptr_or_null<R>(state0), static_cast<R*>(o.raw_data()), static_cast<R*>(state.raw_data()),
          static_cast<R*>(ws.raw_data()), ws_stride, smem > 0);
      ATTNLAB_CUDA_CHECK_LAUNCH("gla_forward_kernel");
    }
  });
}

void linear_attention_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
                                       int64_t chunk, const Tensor& state0, const Tensor& dout, Tensor& dq,
                                       Tensor& dk, Tensor& dv, Tensor& dg) {
  const ChunkDims dm = chunk_dims(q, v, g, chunk);
  const int64_t N = sequences(q);
  if (dm.T == 0 || N == 0) return;
  if (q.dtype() == DType::bf16) {
    Tensor dq32 = f32_like(dq), dk32 = f32_like(dk), dv32 = f32_like(dv), dg32 = f32_like(dg);
    linear_attention_chunked_backward(widened(q), widened(k), widened(v), widened(g), chunk, widened(state0),
                                      widened(dout), dq32, dk32, dv32, dg32);
    cuda::copy(dq, dq32);
    cuda::copy(dk, dk32);
    cuda::copy(dv, dv32);
    if (dg.defined()) cuda::copy(dg, dg32);
    return;
  }
  DeviceGuard guard(q.device().index);
  dispatch_float(q.dtype(), "linear_attention_chunked_backward", [&]<class R>() {
    if constexpr (!std::is_same_v<R, bf16>) {
      const int64_t ws_stride = GlaWorkspace(dm).size;
      Tensor ws = Tensor::empty({N, ws_stride}, q.dtype(), q.device());
      auto* kernel = gla_backward_kernel<R>;
      const size_t smem = plan_state_smem(kernel, dm.state_size() * static_cast<int64_t>(sizeof(R)));
      kernel<<<sequence_blocks(N, "linear_attention_chunked_backward"), kThreads, smem>>>(
          dm, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(g), ptr_or_null<R>(state0),
          ptr_or_null<R>(dout), static_cast<R*>(dq.raw_data()), static_cast<R*>(dk.raw_data()),
          static_cast<R*>(dv.raw_data()), dm.gate == GateKind::none ? nullptr : static_cast<R*>(dg.raw_data()),
          static_cast<R*>(ws.raw_data()), ws_stride, smem > 0);
      ATTNLAB_CUDA_CHECK_LAUNCH("gla_backward_kernel");
    }
  });
}

}  // namespace attnlab::cuda
