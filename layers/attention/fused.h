#pragma once
// The adapter from a layer's attention options to the fused kernel
// (ag::flash_attention): which option combinations the kernel covers, and the
// kernel parameters for one call. Positions by RoPE are applied to q and k
// before the call, exactly as on the composed path.
#include "autograd/var.h"
#include "core/attention_params.h"
#include "layers/attention/options.h"

namespace attnlab {

// True when the fused kernel computes the same function as the composed path
// for these (resolved) options: softmax attention, mask causal / window / none,
// pos rope / nope, any head grouping. An axis value added to AttnOptions is
// unsupported until it is mapped in fused_params and listed here.
bool fused_supports(const AttnOptions& resolved);

// Kernel parameters for queries at positions q_offset, q_offset + 1, ... (the
// KV-cache position; 0 in training). Throws attnlab::Error when
// !fused_supports(resolved).
FlashAttentionParams fused_params(const AttnOptions& resolved, int64_t q_offset);

// q [B, H, T, D] (after RoPE), k, v [B, Hkv, Tk, D] (the whole cache when
// decoding) -> [B, H, T, D], the composed path's output before the heads are
// merged and projected by wo.
Var fused_attention(const Var& q, const Var& k, const Var& v, const AttnOptions& resolved, int64_t q_offset);

}  // namespace attnlab
