// Chunkwise gated linear attention on the GPU (ops::linear_attention_chunked and
// its backward). One thread block per (batch, head) sequence walks the chunks in
// order with its scratch (the running state [Dk, Dv] and the chunk's buffers) in
// shared memory when it fits, else the state alone, else all in its global
// workspace slot; inside a chunk every phase spreads its outputs over the block's
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
    gla_forward_kernel(ChunkDims dm, ValueSplit vsplit, const R* q, const R* k, const R* v, const R* g,
                       const R* s0, R* o, R* state, R* ws, int64_t ws_stride, int64_t split) {
  const int64_t b = blockIdx.x, n = b / vsplit.slices;
  const int64_t oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, os = n * dm.state_size();
  BlockExecutor ex;
  gla_forward(ex, dm, vsplit.slice(b - n * vsplit.slices), q + oq, k + oq, v + ov,
              g ? g + n * dm.T * dm.gate_width() : nullptr, s0 ? s0 + os : nullptr, o + ov, state + os,
              block_scratch(ws, ws_stride, split));
}

template <class R>
__global__ void __launch_bounds__(kThreads)
    gla_backward_kernel(ChunkDims dm, const R* q, const R* k, const R* v, const R* g, const R* s0, const R* dout,
                        R* dq, R* dk, R* dv, R* dg, R* ws, int64_t ws_stride, int64_t split) {
  const int64_t n = blockIdx.x, oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, og = n * dm.T * dm.gate_width();
  BlockExecutor ex;
  gla_backward(ex, dm, q + oq, k + oq, v + ov, g ? g + og : nullptr, s0 ? s0 + n * dm.state_size() : nullptr,
               dout + ov, dq + oq, dk + oq, dv + ov, dg ? dg + og : nullptr, block_scratch(ws, ws_stride, split));
}

}  // namespace

void linear_attention_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, int64_t chunk,
                              const Tensor& state0, Tensor& o, Tensor& state) {
  const ChunkDims dm = chunk_dims(q, v, g, chunk);
  const int64_t N = sequences(q);
  if (dm.T == 0) return pass_initial_state(state0, state);
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
      const ValueSplit vsplit = forward_split(N, dm.Dv);
      const GlaWorkspace w(dm, vsplit.W);
      const int64_t blocks = N * vsplit.slices;
      auto* kernel = gla_forward_kernel<R>;
      const int64_t elem = static_cast<int64_t>(sizeof(R)), split = plan_shared(kernel, w, elem);
      const size_t smem = static_cast<size_t>(split * elem);
      Tensor ws = Tensor::empty({blocks, w.size}, q.dtype(), q.device());
      kernel<<<sequence_blocks(blocks, "linear_attention_chunked"), kThreads, smem>>>(
          dm, vsplit, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(g),
          ptr_or_null<R>(state0), static_cast<R*>(o.raw_data()), static_cast<R*>(state.raw_data()),
          static_cast<R*>(ws.raw_data()), w.size, split);
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
      const GlaWorkspace w(dm, dm.Dv);
      const int64_t blocks = N;
      auto* kernel = gla_backward_kernel<R>;
      const int64_t elem = static_cast<int64_t>(sizeof(R)), split = plan_shared(kernel, w, elem);
      const size_t smem = static_cast<size_t>(split * elem);
      Tensor ws = Tensor::empty({blocks, w.size}, q.dtype(), q.device());
      kernel<<<sequence_blocks(blocks, "linear_attention_chunked_backward"), kThreads, smem>>>(
          dm, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(g), ptr_or_null<R>(state0),
          ptr_or_null<R>(dout), static_cast<R*>(dq.raw_data()), static_cast<R*>(dk.raw_data()),
          static_cast<R*>(dv.raw_data()), dm.gate == GateKind::none ? nullptr : static_cast<R*>(dg.raw_data()),
          static_cast<R*>(ws.raw_data()), w.size, split);
      ATTNLAB_CUDA_CHECK_LAUNCH("gla_backward_kernel");
    }
  });
}

}  // namespace attnlab::cuda
