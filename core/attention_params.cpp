#include "core/attention_params.h"

#include <cmath>

#include "core/error.h"

namespace attnlab {

const char* flash_mask_name(FlashMask m) {
  switch (m) {
    case FlashMask::none: return "none";
    case FlashMask::causal: return "causal";
    case FlashMask::window: return "window";
    case FlashMask::sinks: return "sinks";
  }
  return "?";
}

const char* flash_score_name(FlashScore s) { return s == FlashScore::softmax ? "softmax" : "sigmoid"; }

double FlashAttentionParams::resolved_scale(int64_t d) const {
  return scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(d));
}

std::string FlashAttentionParams::str() const {
  std::string s = detail::cat("score=", flash_score_name(score), " mask=", flash_mask_name(mask));
  if (mask == FlashMask::window || mask == FlashMask::sinks) s += detail::cat(" window=", window);
  if (mask == FlashMask::sinks) s += detail::cat(" sinks=", sinks);
  if (scale != 0) s += detail::cat(" scale=", scale);
  if (q_offset != 0) s += detail::cat(" q_offset=", q_offset);
  if (!alibi_slopes.empty()) s += detail::cat(" alibi_slopes=", alibi_slopes.size());
  if (softcap != 0) s += detail::cat(" softcap=", softcap);
  if (score == FlashScore::sigmoid) s += detail::cat(" sigmoid_bias=", sigmoid_bias);
  if (entropy) s += " entropy";
  return s;
}

}  // namespace attnlab
