#pragma once
// ALiBi (Press et al., "Train Short, Test Long: Attention with Linear Biases
// Enables Input Length Extrapolation"): no position embedding; each head h adds
// -m_h * (i - j) to the logit of query i and key j, with fixed slopes m_h.
#include <vector>

#include "core/tensor.h"

namespace attnlab {

// The slopes of H heads (Sec. 3): for H a power of two, m_h = 2^(-8h/H),
// h = 1..H. Otherwise, with n the largest power of two below H, the n slopes of
// n heads followed by the first H - n odd-indexed slopes of 2n heads
// (2^(-4(2i+1)/n), i = 0..H-n-1): the paper's rule, which keeps the geometric
// spread for any H.
std::vector<double> alibi_slopes(int64_t n_head);

// The [H, Tq, Tk] bias -m_h * |q - j| / scale for queries at positions
// q_offset .. q_offset + Tq - 1 and keys at 0 .. Tk - 1. scale > 1 interpolates
// positions (distances shrink by that factor, as RoPE's rope_scale does).
// The absolute distance makes the same table serve bidirectional attention.
Tensor alibi_bias(const std::vector<double>& slopes, int64_t Tq, int64_t Tk, int64_t q_offset, double scale,
                  DType dtype, Device device);

}  // namespace attnlab
