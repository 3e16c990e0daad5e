// Fused rotary position embedding (core/ops.h rope): one thread per element of
// x, with the composition's arithmetic (each product rounded, then the sum: no
// FMA), so f32/f64 match the composed ops exactly and the fused CPU kernel to
// rounding; bf16 computes in float and rounds once.
#include "core/cuda/cuda_ops.h"
#include "core/cuda/kernel_utils.cuh"
#include "core/cuda/rounded_math.h"

namespace attnlab::cuda {

namespace {

// x viewed as [rows, D]; row r is position r % T.
template <class V>
__global__ void rope_kernel(const V* x, const V* cos, const V* sin, V* out, int64_t n, int64_t D, int64_t T,
                            int64_t h, bool inverse) {
  using C = compute_t<V>;
  for (int64_t e = grid_start(); e < n; e += grid_stride()) {
    const int64_t r = e / D, j = e - r * D;
    if (j >= 2 * h) {
      out[e] = x[e];
      continue;
    }
    const int64_t i = j < h ? j : j - h;  // the pair (i, i + h)
    const int64_t t = (r % T) * h + i;
    const C c = static_cast<C>(cos[t]), s = static_cast<C>(sin[t]);
    const C x1 = static_cast<C>(x[r * D + i]), x2 = static_cast<C>(x[r * D + i + h]);
    C y;
    if (j < h) {  // y1 = x1 c - x2 s (inverse: + x2 s)
      const C a = rn::mul(x1, c), b = rn::mul(x2, s);
      y = inverse ? rn::add(a, b) : rn::sub(a, b);
    } else {  // y2 = x2 c + x1 s (inverse: - x1 s)
      const C a = rn::mul(x2, c), b = rn::mul(x1, s);
      y = inverse ? rn::sub(a, b) : rn::add(a, b);
    }
    out[e] = V(y);
  }
}

}  // namespace

void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse, Tensor& out) {
  const int64_t n = x.numel();
  if (n == 0) return;
  DeviceGuard guard(x.device().index);
  dispatch_float(x.dtype(), "rope", [&]<class V>() {
    rope_kernel<V><<<blocks_for(n), kThreads>>>(x.data<V>(), cos.data<V>(), sin.data<V>(), out.data<V>(), n,
                                                x.size(-1), x.size(-2), cos.size(1), inverse);
    ATTNLAB_CUDA_CHECK_LAUNCH("rope_kernel");
  });
}

}  // namespace attnlab::cuda
