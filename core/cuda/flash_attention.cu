// Fused attention forward on CUDA: launches flash_forward_mma_kernel
// (flash_forward_mma.cuh: tensor cores, bf16 with head dims 64 or 128 on sm_80
// and newer) or else flash_forward_kernel (flash_forward.cuh: SIMT, every
// dtype and head dim). The algorithm and its sources are described there.
#include "core/cuda/cuda_ops.h"
#include "core/cuda/flash_forward.cuh"
#include "core/cuda/flash_forward_mma.cuh"
#include "core/cuda/flash_launch.h"
#include "core/cuda/kernel_utils.cuh"

namespace attnlab::cuda {

using namespace flash;

namespace {

// The tensor-core forward; false when it does not cover the call.
bool launch_mma_forward(const FlashKernelParams& p, const FlashAttentionParams& params, const Tensor& q,
                        const Tensor& k, const Tensor& v, Tensor& out, Tensor* lse, Tensor* entropy,
                        Tensor* sink_mass) {
  if (q.dtype() != DType::bf16 || !mma_forward_covers(p.D, p.Dv) || !has_bf16_tensor_cores(q.device().index))
    return false;
  const int64_t blocks = p.B * p.H * ((p.Tq + kMmaTile - 1) / kMmaTile);
  const int64_t bytes = mma_forward_smem_bytes(p.D, p.Dv);
  auto launch = [&]<FlashScore kScore, int kD, int kDv>() {
    auto* kernel = flash_forward_mma_kernel<kScore, kD, kDv>;
    prepare_smem(kernel, bytes, q.device().index, "flash_attention", p.D, p.Dv, q.dtype());
    kernel<<<static_cast<unsigned>(blocks), kMmaThreads, bytes>>>(
        p, static_cast<const bf16*>(q.raw_data()), static_cast<const bf16*>(k.raw_data()),
        static_cast<const bf16*>(v.raw_data()), static_cast<bf16*>(out.raw_data()),
        lse ? static_cast<float*>(lse->raw_data()) : nullptr,
        entropy ? static_cast<bf16*>(entropy->raw_data()) : nullptr,
        sink_mass ? static_cast<bf16*>(sink_mass->raw_data()) : nullptr);
    ATTNLAB_CUDA_CHECK_LAUNCH("flash_forward_mma_kernel");
  };
  dispatch_mma_dims(p.D, p.Dv, [&]<int kD, int kDv>() {
    if (params.score == FlashScore::softmax) launch.template operator()<FlashScore::softmax, kD, kDv>();
    else launch.template operator()<FlashScore::sigmoid, kD, kDv>();
  });
  return true;
}

}  // namespace

void flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, const FlashAttentionParams& params,
                     Tensor& out, Tensor* lse, Tensor* entropy, Tensor* sink_mass) {
  if (out.numel() == 0) return;
  const FlashKernelParams p =
      make_kernel_params(params, q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), v.size(3));
  const int64_t blocks = p.B * p.H * p.q_tiles();
  ATTNLAB_CHECK(blocks <= kMaxGridX, "flash_attention (CUDA): ", blocks, " query tiles exceed the grid limit");
  DeviceGuard guard(q.device().index);
  if (launch_mma_forward(p, params, q, k, v, out, lse, entropy, sink_mass)) return;
  dispatch_float(q.dtype(), "flash_attention", [&]<class T>() {
    using C = compute_t<T>;
    const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(col_chunks(p.Dv)));
    const int64_t bytes = forward_smem_elems(p.D, p.Dv) * static_cast<int64_t>(sizeof(C));
    auto launch = [&]<FlashScore kScore, int kCols>() {
      auto* kernel = flash_forward_kernel<T, kScore, kCols>;
      prepare_smem(kernel, bytes, q.device().index, "flash_attention", p.D, p.Dv, q.dtype());
      kernel<<<grid, kFlashThreads, bytes>>>(p, static_cast<const T*>(q.raw_data()),
                                             static_cast<const T*>(k.raw_data()), static_cast<const T*>(v.raw_data()),
                                             static_cast<T*>(out.raw_data()),
                                             lse ? static_cast<C*>(lse->raw_data()) : nullptr,
                                             entropy ? static_cast<T*>(entropy->raw_data()) : nullptr,
                                             sink_mass ? static_cast<T*>(sink_mass->raw_data()) : nullptr);
      ATTNLAB_CUDA_CHECK_LAUNCH("flash_forward_kernel");
    };
    dispatch_cols(p.Dv, [&]<int kCols>() {
      if (params.score == FlashScore::softmax) launch.template operator()<FlashScore::softmax, kCols>();
      else launch.template operator()<FlashScore::sigmoid, kCols>();
    });
  });
}

}  // namespace attnlab::cuda
