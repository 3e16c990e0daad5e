#include "layers/attention/fused.h"

#include <cmath>

#include "autograd/attention.h"
#include "core/error.h"

namespace attnlab {

bool fused_supports(const AttnOptions& o) {
  const bool mask_ok = o.mask == MaskKind::causal || o.mask == MaskKind::window || o.mask == MaskKind::none;
  const bool pos_ok = o.pos == PosKind::rope || o.pos == PosKind::nope;
  return o.kind == "softmax" && mask_ok && pos_ok && o.n_head > 0 && o.n_kv_head > 0 &&
         o.n_head % o.n_kv_head == 0 && o.d_head > 0;
}

FlashAttentionParams fused_params(const AttnOptions& o, int64_t q_offset) {
  ATTNLAB_CHECK(fused_supports(o), "attention: the fused kernel does not cover kind=", o.kind,
                " mask=", mask_kind_name(o.mask), " pos=", pos_kind_name(o.pos), " n_head=", o.n_head,
                " n_kv_head=", o.n_kv_head, " d_head=", o.d_head, " (use the composed path)");
  FlashAttentionParams p;
  p.scale = 1.0 / std::sqrt(static_cast<double>(o.d_head));
  switch (o.mask) {
    case MaskKind::causal: p.mask = FlashMask::causal; break;
    case MaskKind::window:
      p.mask = FlashMask::window;
      p.window = o.window;
      break;
    case MaskKind::none: p.mask = FlashMask::none; break;
  }
  p.q_offset = q_offset;
  return p;
}

Var fused_attention(const Var& q, const Var& k, const Var& v, const AttnOptions& o, int64_t q_offset) {
  return ag::flash_attention(q, k, v, fused_params(o, q_offset));
}

}  // namespace attnlab
