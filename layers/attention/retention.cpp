#include "layers/attention/retention.h"

#include <cmath>
#include <vector>

namespace attnlab {

double retention_gamma(int64_t head, double decay) {
  return decay > 0 ? decay : 1.0 - std::pow(2.0, -5.0 - static_cast<double>(head));
}

Tensor retention_log_gates(int64_t B, int64_t H, int64_t T, double decay, DType dtype, Device device) {
  std::vector<double> g(static_cast<size_t>(B * H * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t t = 0; t < T; ++t) g[static_cast<size_t>((b * H + h) * T + t)] = std::log(retention_gamma(h, decay));
  return Tensor::from(g, {B, H, T}).to(dtype).to(device);
}

}  // namespace attnlab
