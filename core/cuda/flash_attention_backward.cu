// Fused attention backward on CUDA: launches the rowdot kernel, then the dK/dV
// and dQ kernels: with tensor cores (flash_backward_mma.cuh) for bf16 with head
// dims 64 or 128 on sm_80 and newer, else the SIMT ones (flash_backward.cuh,
// every dtype and head dim). The algorithm and its sources are described there.
#include "core/cuda/cuda_ops.h"
#include "core/cuda/flash_backward.cuh"
#include "core/cuda/flash_backward_mma.cuh"
#include "core/cuda/flash_launch.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

using namespace flash;

void flash_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                              const Tensor& lse, const Tensor& dout, const FlashAttentionParams& params, Tensor& dq,
                              Tensor& dk, Tensor& dv, const Tensor* entropy, const Tensor* dentropy) {
  if (dq.numel() == 0 || dk.numel() == 0 || dv.numel() == 0) {  // no rows or no keys: zero gradients
    for (Tensor* t : {&dq, &dk, &dv})
      if (t->numel()) fill(*t, 0.0);
    return;
  }
  const FlashKernelParams p =
      make_kernel_params(params, q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), v.size(3));
  const int64_t q_blocks = p.B * p.H * p.q_tiles(), k_blocks = p.B * p.Hkv * p.k_tiles();
  ATTNLAB_CHECK(q_blocks <= kMaxGridX && k_blocks <= kMaxGridX, "flash_attention_backward (CUDA): ", q_blocks,
                " query tiles or ", k_blocks, " key tiles exceed the grid limit");
  const bool softmax = params.score == FlashScore::softmax;
  const bool with_entropy = softmax && dentropy != nullptr;
  const int dev = q.device().index;
  DeviceGuard guard(dev);
  dispatch_float(q.dtype(), "flash_attention_backward", [&]<class T>() {
    using C = compute_t<T>;
    // D_i, from the caching allocator (no system allocation per step).
    Tensor drow;
    if (softmax) {
      const int64_t rows = p.B * p.H * p.Tq;
      drow = Tensor::empty({rows}, dtype_v<C>, q.device());
      const int64_t blocks = (rows + kRowdotThreads / 32 - 1) / (kRowdotThreads / 32);
      flash_rowdot_kernel<T><<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), kRowdotThreads>>>(
          static_cast<const T*>(out.raw_data()), static_cast<const T*>(dout.raw_data()),
          with_entropy ? static_cast<const T*>(entropy->raw_data()) : nullptr,
          with_entropy ? static_cast<const T*>(dentropy->raw_data()) : nullptr, rows, p.Dv,
          static_cast<C*>(drow.raw_data()));
      ATTNLAB_CUDA_CHECK_LAUNCH("flash_rowdot_kernel");
    }
    const BwdInputs<T> in{static_cast<const T*>(q.raw_data()),
                          static_cast<const T*>(k.raw_data()),
                          static_cast<const T*>(v.raw_data()),
                          static_cast<const T*>(dout.raw_data()),
                          softmax ? static_cast<const C*>(lse.raw_data()) : nullptr,
                          softmax ? static_cast<const C*>(drow.raw_data()) : nullptr,
                          with_entropy ? static_cast<const T*>(dentropy->raw_data()) : nullptr};
    const int64_t dkdv_bytes = backward_dkdv_smem_elems(p.D, p.Dv) * static_cast<int64_t>(sizeof(C));
    const int64_t dq_bytes = backward_dq_smem_elems(p.D, p.Dv) * static_cast<int64_t>(sizeof(C));
    const bool mma = std::is_same_v<T, bf16> && mma_forward_covers(p.D, p.Dv) && has_bf16_tensor_cores(dev);
    auto launch_mma = [&]<FlashScore kScore>() {
      if constexpr (std::is_same_v<T, bf16>) {
        dispatch_mma_dims(p.D, p.Dv, [&]<int kD, int kDv>() {
          const unsigned kv_blocks = static_cast<unsigned>(p.B * p.Hkv * ((p.Tk + kMmaTile - 1) / kMmaTile));
          const unsigned row_blocks = static_cast<unsigned>(p.B * p.H * ((p.Tq + kMmaTile - 1) / kMmaTile));
          auto* dkdv_kernel = flash_dkdv_mma_kernel<kScore, kD, kDv>;
          prepare_smem(dkdv_kernel, mma_dkdv_smem_bytes(kD, kDv), dev, "flash_attention_backward", p.D, p.Dv,
                       q.dtype());
          dkdv_kernel<<<kv_blocks, kMmaThreads, mma_dkdv_smem_bytes(kD, kDv)>>>(p, in, static_cast<bf16*>(dk.raw_data()),
                                                                               static_cast<bf16*>(dv.raw_data()));
          ATTNLAB_CUDA_CHECK_LAUNCH("flash_dkdv_mma_kernel");
          auto* dq_kernel = flash_dq_mma_kernel<kScore, kD, kDv>;
          prepare_smem(dq_kernel, mma_dq_smem_bytes(kD, kDv), dev, "flash_attention_backward", p.D, p.Dv, q.dtype());
          dq_kernel<<<row_blocks, kMmaThreads, mma_dq_smem_bytes(kD, kDv)>>>(p, in, static_cast<bf16*>(dq.raw_data()));
          ATTNLAB_CUDA_CHECK_LAUNCH("flash_dq_mma_kernel");
        });
      }
    };
    auto launch = [&]<FlashScore kScore>() {
      if (mma) return launch_mma.template operator()<kScore>();
      dispatch_cols(p.D > p.Dv ? p.D : p.Dv, [&]<int kCols>() {
        auto* kernel = flash_dkdv_kernel<T, kScore, kCols>;
        prepare_smem(kernel, dkdv_bytes, dev, "flash_attention_backward", p.D, p.Dv, q.dtype());
        const dim3 grid(static_cast<unsigned>(k_blocks), static_cast<unsigned>(col_chunks(p.D > p.Dv ? p.D : p.Dv)));
        kernel<<<grid, kFlashThreads, dkdv_bytes>>>(p, in, static_cast<T*>(dk.raw_data()),
                                                    static_cast<T*>(dv.raw_data()));
        ATTNLAB_CUDA_CHECK_LAUNCH("flash_dkdv_kernel");
      });
      dispatch_cols(p.D, [&]<int kCols>() {
        auto* kernel = flash_dq_kernel<T, kScore, kCols>;
        prepare_smem(kernel, dq_bytes, dev, "flash_attention_backward", p.D, p.Dv, q.dtype());
        const dim3 grid(static_cast<unsigned>(q_blocks), static_cast<unsigned>(col_chunks(p.D)));
        kernel<<<grid, kFlashThreads, dq_bytes>>>(p, in, static_cast<T*>(dq.raw_data()));
        ATTNLAB_CUDA_CHECK_LAUNCH("flash_dq_kernel");
      });
    };
    if (softmax) launch.template operator()<FlashScore::softmax>();
    else launch.template operator()<FlashScore::sigmoid>();
  });
}

}  // namespace attnlab::cuda
