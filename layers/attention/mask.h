#pragma once
#include "core/tensor.h"
#include "layers/attention/options.h"

namespace attnlab {

// An i32 [Tq, Tk] mask, non-zero where query i (at position q_offset + i) must
// not see key j (at position j): causal hides j > q; window also hides
// j <= q - window. Undefined when nothing is hidden (the caller skips masking).
Tensor make_attn_mask(MaskKind kind, int64_t window, int64_t Tq, int64_t Tk, int64_t q_offset,
                      Device device = Device::cpu());

}  // namespace attnlab
