#include "layers/attention/mask.h"

#include <vector>

namespace attnlab {

Tensor make_attn_mask(MaskKind kind, int64_t window, int64_t Tq, int64_t Tk, int64_t q_offset, Device device) {
  if (kind == MaskKind::none) return Tensor();
  std::vector<int32_t> m(static_cast<size_t>(Tq * Tk));
  bool any = false;
  for (int64_t i = 0; i < Tq; ++i) {
    int64_t q = q_offset + i;
    for (int64_t j = 0; j < Tk; ++j) {
      bool hide = j > q || (kind == MaskKind::window && j <= q - window);
      m[static_cast<size_t>(i * Tk + j)] = hide;
      any = any || hide;
    }
  }
  return any ? Tensor::from(m, {Tq, Tk}, device) : Tensor();
}

}  // namespace attnlab
