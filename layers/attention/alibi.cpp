#include "layers/attention/alibi.h"

#include <cmath>
#include <cstdlib>

namespace attnlab {

std::vector<double> alibi_slopes(int64_t n_head) {
  ATTNLAB_CHECK(n_head > 0, "alibi: n_head must be positive, got ", n_head);
  int64_t n = 1;
  while (2 * n <= n_head) n *= 2;
  std::vector<double> s;
  for (int64_t h = 1; h <= n; ++h) s.push_back(std::exp2(-8.0 * static_cast<double>(h) / static_cast<double>(n)));
  for (int64_t i = 0; i < n_head - n; ++i)
    s.push_back(std::exp2(-4.0 * static_cast<double>(2 * i + 1) / static_cast<double>(n)));
  return s;
}

Tensor alibi_bias(const std::vector<double>& slopes, int64_t Tq, int64_t Tk, int64_t q_offset, double scale,
                  DType dtype, Device device) {
  const int64_t H = static_cast<int64_t>(slopes.size());
  std::vector<double> b(static_cast<size_t>(H * Tq * Tk));
  size_t at = 0;
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j)
        b[at++] = -slopes[static_cast<size_t>(h)] * static_cast<double>(std::llabs(q_offset + i - j)) / scale;
  return Tensor::from(b, {H, Tq, Tk}).to(dtype).to(device);
}

}  // namespace attnlab
