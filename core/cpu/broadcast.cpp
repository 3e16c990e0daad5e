#include "core/cpu/broadcast.h"

namespace attnlab::cpu {

BroadcastPlan::BroadcastPlan(const Shape& out, const std::vector<Shape>& inputs) {
  Shape full = out.empty() ? Shape{1} : out;
  size_t n = full.size();
  inner_ = full.back();
  out_.assign(full.begin(), full.end() - 1);
  rows_ = numel_of(out_);
  for (const Shape& in_shape : inputs) {
    // Align from the right, padding with 1s; contiguous strides, 0 where broadcast.
    Shape in(n, 1);
    for (size_t i = 0; i < in_shape.size(); ++i) in[n - in_shape.size() + i] = in_shape[i];
    std::vector<int64_t> strides(n);
    int64_t s = 1;
    for (size_t d = n; d-- > 0;) {
      strides[d] = in[d] == 1 && full[d] != 1 ? 0 : s;
      s *= in[d];
    }
    inner_stride_.push_back(in[n - 1] == 1 && full[n - 1] != 1 ? 0 : 1);
    strides.pop_back();
    strides_.push_back(std::move(strides));
  }
}

int64_t BroadcastPlan::row_offset(size_t input, int64_t row) const {
  const std::vector<int64_t>& st = strides_[input];
  int64_t off = 0;
  for (size_t d = out_.size(); d-- > 0;) {
    int64_t i = row % out_[d];
    row /= out_[d];
    off += i * st[d];
  }
  return off;
}

}  // namespace attnlab::cpu
