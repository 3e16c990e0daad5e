// Fused rotary position embedding (core/ops.h rope): one pass over x instead
// of the split / mul / sub / add / concat composition, in the composition's
// order (two products, then their sum or difference). g++ may contract a
// product and the sum into an FMA here (-march=native, C++ defaults to
// -ffp-contract=fast), so the two agree to rounding, not always bit for bit.
#include "core/cpu/cpu_ops.h"
#include "core/cpu/dispatch.h"

namespace attnlab::cpu {

void rope(const Tensor& x, const Tensor& cos, const Tensor& sin, bool inverse, Tensor& out) {
  const int64_t D = x.size(-1), T = x.size(-2), h = cos.size(1);
  const int64_t rows = D == 0 ? 0 : x.numel() / D;
  dispatch_float(x.dtype(), "rope", [&]<class V>() {
    const V* px = x.data<V>();
    const V* pc = cos.data<V>();
    const V* ps = sin.data<V>();
    V* po = out.data<V>();
#pragma omp parallel for schedule(static) if (rows * D > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) {
      const V* xr = px + r * D;
      const V* c = pc + (r % T) * h;
      const V* s = ps + (r % T) * h;
      V* yr = po + r * D;
      for (int64_t i = 0; i < h; ++i) {
        const V x1 = xr[i], x2 = xr[i + h];
        // inverse: sin -> -sin, i.e. y1 = x1 c + x2 s and y2 = x2 c - x1 s.
        const V a = x1 * c[i], b = x2 * s[i], e = x2 * c[i], f = x1 * s[i];
        yr[i] = inverse ? a + b : a - b;
        yr[i + h] = inverse ? e - f : e + f;
      }
      for (int64_t j = 2 * h; j < D; ++j) yr[j] = xr[j];
    }
  });
}

}  // namespace attnlab::cpu
