#include "layers/attention/mask.h"

#include <vector>

namespace attnlab {

bool mask_allows(const AttnOptions& o, int64_t q, int64_t j) {
  if (o.mask == MaskKind::none) return true;
  if (j > q) return false;
  const int64_t d = q - j;
  switch (o.mask) {
    case MaskKind::window: return d < o.window;
    case MaskKind::sinks: return d < o.window || j < o.sink_tokens;
    case MaskKind::strided: return d < o.stride || d % o.stride == 0;
    case MaskKind::fixed: return j / o.stride == q / o.stride || j % o.stride >= o.stride - o.summary;
    default: return true;  // causal; moba's block choice is made on top (moba.h)
  }
}

Tensor make_attn_mask(const AttnOptions& o, int64_t Tq, int64_t Tk, int64_t q_offset, Device device) {
  if (o.mask == MaskKind::none) return Tensor();
  std::vector<int32_t> m(static_cast<size_t>(Tq * Tk));
  bool any = false;
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j) {
      bool hide = !mask_allows(o, q_offset + i, j);
      m[static_cast<size_t>(i * Tk + j)] = hide;
      any = any || hide;
    }
  return any ? Tensor::from(m, {Tq, Tk}, device) : Tensor();
}

Tensor make_attn_mask(MaskKind kind, int64_t window, int64_t Tq, int64_t Tk, int64_t q_offset, Device device) {
  AttnOptions o;
  o.mask = kind;
  o.window = window;
  return make_attn_mask(o, Tq, Tk, q_offset, device);
}

}  // namespace attnlab
