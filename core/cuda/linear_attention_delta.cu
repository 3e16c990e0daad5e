// Chunkwise (gated) delta rule on the GPU (ops::delta_rule_chunked and its
// backward). One thread block per (batch, head) sequence walks the chunks in
// order with its scratch (the running state [Dk, Dv] and the chunk's buffers) in
// shared memory when it fits, else the state alone, else all in its global
// workspace slot; per chunk the UT transform's triangular solve runs down each
// value column in its own thread, and with few sequences the forward splits the
// value columns over blocks (results do not change). The math is
// linear_attention_chunks.h's delta_forward / delta_backward (Yang et al.,
// "Parallelizing Linear Transformers with the Delta Rule over Sequence Length",
// sec. 3; Yang et al., "Gated Delta Networks", sec. 3.3), the same code the host
// tests run. The backward stores the state at every chunk start in its workspace
// (as the CPU kernel, core/cpu/linear_attention_delta.cpp), always in global memory.
#include "core/cuda/linear_attention_launch.cuh"

namespace attnlab::cuda {

namespace {

using namespace linattn;

template <class R>
__global__ void __launch_bounds__(kThreads)
    delta_forward_kernel(ChunkDims dm, ValueSplit vsplit, const R* q, const R* k, const R* v, const R* beta,
                         const R* g, const R* s0, R* o, R* state, R* ws, int64_t ws_stride, int64_t split) {
  const int64_t b = blockIdx.x, n = b / vsplit.slices;
  const int64_t oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, os = n * dm.state_size();
  BlockExecutor ex;
  delta_forward(ex, dm, vsplit.slice(b - n * vsplit.slices), q + oq, k + oq, v + ov, beta + n * dm.T,
                g ? g + n * dm.T : nullptr, s0 ? s0 + os : nullptr, o + ov, state + os,
              block_scratch(ws, ws_stride, split));
}

template <class R>
__global__ void __launch_bounds__(kThreads)
    delta_backward_kernel(ChunkDims dm, const R* q, const R* k, const R* v, const R* beta, const R* g, const R* s0,
                          const R* dout, R* dq, R* dk, R* dv, R* dbeta, R* dg, R* ws, int64_t ws_stride,
                          int64_t split) {
  const int64_t n = blockIdx.x, oq = n * dm.T * dm.Dk, ov = n * dm.T * dm.Dv, ot = n * dm.T;
  BlockExecutor ex;
  delta_backward(ex, dm, q + oq, k + oq, v + ov, beta + ot, g ? g + ot : nullptr,
                 s0 ? s0 + n * dm.state_size() : nullptr, dout + ov, dq + oq, dk + oq, dv + ov, dbeta + ot,
                 dg ? dg + ot : nullptr, block_scratch(ws, ws_stride, split));
}

// The CPU kernel's check, repeated: ops:: accepts per-dim gates for linear attention only.
void check_scalar_gates(const ChunkDims& dm, const Tensor& g, const char* op) {
  ATTNLAB_CHECK(dm.gate != GateKind::diag, op, ": the delta rule's gates are one per step [..., T], got ", g.str());
}

}  // namespace

void delta_rule_chunked(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta, const Tensor& g,
                        int64_t chunk, const Tensor& state0, Tensor& o, Tensor& state) {
  const ChunkDims dm = chunk_dims(q, v, g, chunk);
  check_scalar_gates(dm, g, "delta_rule_chunked");
  const int64_t N = sequences(q);
  if (dm.T == 0) return pass_initial_state(state0, state);
  if (N == 0) return;
  if (q.dtype() == DType::bf16) {
    Tensor o32 = f32_like(o), s32 = f32_like(state);
    delta_rule_chunked(widened(q), widened(k), widened(v), widened(beta), widened(g), chunk, widened(state0), o32, s32);
    cuda::copy(o, o32);
    cuda::copy(state, s32);
    return;
  }
  DeviceGuard guard(q.device().index);
  dispatch_float(q.dtype(), "delta_rule_chunked", [&]<class R>() {
    if constexpr (!std::is_same_v<R, bf16>) {
      const ValueSplit vsplit = forward_split(N, dm.Dv);
      const DeltaWorkspace w(dm, false, vsplit.W);
      const int64_t blocks = N * vsplit.slices;
      auto* kernel = delta_forward_kernel<R>;
      const int64_t elem = static_cast<int64_t>(sizeof(R)), split = plan_shared(kernel, w, elem);
      const size_t smem = static_cast<size_t>(split * elem);
      Tensor ws = Tensor::empty({blocks, w.size}, q.dtype(), q.device());
      kernel<<<sequence_blocks(blocks, "delta_rule_chunked"), kThreads, smem>>>(
          dm, vsplit, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(beta),
          ptr_or_null<R>(g), ptr_or_null<R>(state0), static_cast<R*>(o.raw_data()), static_cast<R*>(state.raw_data()),
          static_cast<R*>(ws.raw_data()), w.size, split);
      ATTNLAB_CUDA_CHECK_LAUNCH("delta_forward_kernel");
    }
  });
}

void delta_rule_chunked_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& beta,
                                 const Tensor& g, int64_t chunk, const Tensor& state0, const Tensor& dout,
                                 Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dbeta, Tensor& dg) {
  const ChunkDims dm = chunk_dims(q, v, g, chunk);
  check_scalar_gates(dm, g, "delta_rule_chunked_backward");
  const int64_t N = sequences(q);
  if (dm.T == 0 || N == 0) return;
  if (q.dtype() == DType::bf16) {
    Tensor dq32 = f32_like(dq), dk32 = f32_like(dk), dv32 = f32_like(dv), db32 = f32_like(dbeta), dg32 = f32_like(dg);
    delta_rule_chunked_backward(widened(q), widened(k), widened(v), widened(beta), widened(g), chunk, widened(state0),
                                widened(dout), dq32, dk32, dv32, db32, dg32);
    cuda::copy(dq, dq32);
    cuda::copy(dk, dk32);
    cuda::copy(dv, dv32);
    cuda::copy(dbeta, db32);
    if (dg.defined()) cuda::copy(dg, dg32);
    return;
  }
  DeviceGuard guard(q.device().index);
  dispatch_float(q.dtype(), "delta_rule_chunked_backward", [&]<class R>() {
    if constexpr (!std::is_same_v<R, bf16>) {
      const DeltaWorkspace w(dm, true, dm.Dv);
      const int64_t blocks = N;
      auto* kernel = delta_backward_kernel<R>;
      const int64_t elem = static_cast<int64_t>(sizeof(R)), split = plan_shared(kernel, w, elem);
      const size_t smem = static_cast<size_t>(split * elem);
      Tensor ws = Tensor::empty({blocks, w.size}, q.dtype(), q.device());
      kernel<<<sequence_blocks(blocks, "delta_rule_chunked_backward"), kThreads, smem>>>(
          dm, ptr_or_null<R>(q), ptr_or_null<R>(k), ptr_or_null<R>(v), ptr_or_null<R>(beta), ptr_or_null<R>(g),
          ptr_or_null<R>(state0), ptr_or_null<R>(dout), static_cast<R*>(dq.raw_data()),
          static_cast<R*>(dk.raw_data()), static_cast<R*>(dv.raw_data()), static_cast<R*>(dbeta.raw_data()),
          dm.gate == GateKind::none ? nullptr : static_cast<R*>(dg.raw_data()), static_cast<R*>(ws.raw_data()),
          w.size, split);
      ATTNLAB_CUDA_CHECK_LAUNCH("delta_backward_kernel");
    }
  });
}

}  // namespace attnlab::cuda
