#include "layers/sinusoidal.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace attnlab {

SinusoidalTable::SinusoidalTable(int64_t dim, double base) : dim_(dim), base_(base) {
  ATTNLAB_CHECK(dim > 0 && base > 0, "sinusoidal: dim and base must be positive, got ", dim, ", ", base);
}

Tensor SinusoidalTable::rows(int64_t pos0, int64_t T, DType dtype, Device device) {
  const int64_t need = pos0 + T;
  if (need > len_) {
    len_ = std::max(need, 2 * len_);
    std::vector<double> t(static_cast<size_t>(len_ * dim_));
    for (int64_t p = 0; p < len_; ++p)
      for (int64_t c = 0; c < dim_; ++c) {
        double angle = static_cast<double>(p) * std::pow(base_, -static_cast<double>(c - c % 2) / static_cast<double>(dim_));
        t[static_cast<size_t>(p * dim_ + c)] = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
      }
    table64_ = Tensor::from(t, {len_, dim_});
    cache_.clear();
  }
  auto key = std::make_pair(dtype, device.str());
  auto it = cache_.find(key);
  if (it == cache_.end()) it = cache_.emplace(key, table64_.to(dtype).to(device)).first;
  return it->second.slice(pos0, need);
}

}  // namespace attnlab
