#pragma once
// Retention's fixed per-head decay (Sun et al., "Retentive Network: A Successor
// to Transformer for Large Language Models", sec. 2.2 and 3: gamma = 1 - 2^(-5 -
// arange(0, h))); Lightning Attention (Qin et al., "Lightning Attention-2") uses
// the same decayed form. With S_t = gamma S_{t-1} + k_t v_t^T the chunkwise kernel
// takes log gamma as a per-step log-gate.
#include "core/tensor.h"

namespace attnlab {

// gamma of head h: `decay` when it is > 0, else 1 - 2^(-5-h).
double retention_gamma(int64_t head, double decay);
// log gamma_h for every step: [B, H, T].
Tensor retention_log_gates(int64_t B, int64_t H, int64_t T, double decay, DType dtype, Device device);

}  // namespace attnlab
