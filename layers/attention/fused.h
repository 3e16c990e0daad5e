#pragma once
// The adapter from a layer's attention options to the fused kernel
// (ag::flash_attention): which option combinations the kernel covers, and the
// kernel parameters for one call. Whatever acts on q, k or v before the scores
// (projections, short conv, QK-norm rms/layer, RoPE, the KV cache) or on the
// heads' output after them (output gate, wo) stays outside the kernel, exactly
// as on the composed path (softmax_attention.cpp).
#include <vector>

#include "autograd/var.h"
#include "core/attention_params.h"
#include "layers/attention/options.h"

namespace attnlab {

// True when the fused kernel computes the composed path's attention weights
// for these resolved options: kind softmax; score softmax or sigmoid; mask
// causal, window, none or sinks; pos rope, nope or alibi; softcap and scale;
// any head grouping. Not covered: relu/softplus scores, strided/fixed/moba
// masks, sink_kv, qk_norm = l2 (learned scale), length_scale. An axis value
// added to AttnOptions is unsupported until it is mapped in fused_params and
// accepted here.
bool fused_supports(const AttnOptions& resolved);

// Kernel parameters for queries at positions q_offset, q_offset + 1, ... (the
// KV-cache position; 0 in training). `alibi_slopes` are the layer's per-head
// slopes for pos = alibi (empty: alibi_slopes(n_head), the default). Throws
// attnlab::Error when !fused_supports(resolved).
FlashAttentionParams fused_params(const AttnOptions& resolved, int64_t q_offset,
                                  const std::vector<double>& alibi_slopes = {});

// q [B, H, T, D] (after QK-norm and RoPE), k, v [B, Hkv, Tk, D] (the whole
// cache when decoding) -> [B, H, T, D]: the composed path's weights @ v, before
// the heads are merged and projected by wo.
Var fused_attention(const Var& q, const Var& k, const Var& v, const AttnOptions& resolved, int64_t q_offset,
                    const std::vector<double>& alibi_slopes = {});

}  // namespace attnlab
