#include "layers/attention/rope.h"

#include <cmath>
#include <vector>

#include "core/ops.h"

namespace attnlab {

Tensor rope_rotate(const Tensor& x, const Tensor& cos, const Tensor& sin) { return ops::rope(x, cos, sin); }

Var rope(const Var& x, const Tensor& cos, const Tensor& sin) {
  return make_result(ops::rope(x.data(), cos, sin), "rope", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{ops::rope(g, cos, sin, /*inverse=*/true)};
  });
}

RopeTable::RopeTable(int64_t rotated_dims, double theta, double scale)
    : rot_(rotated_dims), theta_(theta), scale_(scale) {
  ATTNLAB_CHECK(rot_ >= 2 && rot_ % 2 == 0, "rope: rotated dims must be even and >= 2, got ", rot_);
  ATTNLAB_CHECK(scale_ > 0, "rope: scale must be positive, got ", scale_);
}

std::pair<Tensor, Tensor> RopeTable::rows(int64_t pos0, int64_t T, DType dtype, Device device) {
  int64_t need = pos0 + T, h = rot_ / 2;
  if (need > len_) {
    len_ = std::max(need, 2 * len_);
    std::vector<double> c(static_cast<size_t>(len_ * h)), s(c.size());
    for (int64_t i = 0; i < h; ++i) {
      double inv_freq = std::pow(theta_, -2.0 * static_cast<double>(i) / static_cast<double>(rot_));
      for (int64_t p = 0; p < len_; ++p) {
        double a = static_cast<double>(p) / scale_ * inv_freq;
        c[static_cast<size_t>(p * h + i)] = std::cos(a);
        s[static_cast<size_t>(p * h + i)] = std::sin(a);
      }
    }
    cos64_ = Tensor::from(c, {len_, h});
    sin64_ = Tensor::from(s, {len_, h});
    cache_.clear();
  }
  auto key = std::make_pair(dtype, device.str());
  auto it = cache_.find(key);
  if (it == cache_.end())
    it = cache_.emplace(key, Tables{cos64_.to(dtype).to(device), sin64_.to(dtype).to(device)}).first;
  return {it->second.cos.slice(pos0, need), it->second.sin.slice(pos0, need)};
}

Var RopeTable::apply(const Var& x, int64_t pos0) {
  auto [c, s] = rows(pos0, x.size(-2), x.dtype(), x.device());
  return rope(x, c, s);
}

}  // namespace attnlab
