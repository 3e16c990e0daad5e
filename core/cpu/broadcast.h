#pragma once
// Maps rows of a broadcast output to offsets in its inputs. The output is
// walked row by row (its last dim); within a row an input either advances
// with the output (inner stride 1) or repeats one element (inner stride 0).
#include <vector>

#include "core/shape.h"

namespace attnlab::cpu {

class BroadcastPlan {
 public:
  BroadcastPlan(const Shape& out, const std::vector<Shape>& inputs);

  int64_t rows() const { return rows_; }
  int64_t inner() const { return inner_; }
  int64_t inner_stride(size_t input) const { return inner_stride_[input]; }
  // Element offset in `input` where output row `row` starts.
  int64_t row_offset(size_t input, int64_t row) const;

 private:
  Shape out_;  // without the last dim
  int64_t rows_ = 1, inner_ = 1;
  std::vector<std::vector<int64_t>> strides_;  // per input, per outer out dim; 0 = broadcast
  std::vector<int64_t> inner_stride_;
};

}  // namespace attnlab::cpu
