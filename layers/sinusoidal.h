#pragma once
// Sinusoidal absolute positions (Vaswani et al., "Attention Is All You Need",
// Sec. 3.5): PE[p, 2i] = sin(p / 10000^(2i/C)), PE[p, 2i+1] = cos(p / 10000^(2i/C)),
// added to the token embeddings. No parameters and no length limit.
#include <map>
#include <string>

#include "core/tensor.h"

namespace attnlab {

class SinusoidalTable {
 public:
  explicit SinusoidalTable(int64_t dim, double base = 10000.0);
  // Rows [pos0, pos0 + T) as a [T, dim] view, computed in double and cached per
  // dtype and device (grown on demand).
  Tensor rows(int64_t pos0, int64_t T, DType dtype, Device device);

 private:
  int64_t dim_;
  double base_;
  int64_t len_ = 0;
  Tensor table64_;
  std::map<std::pair<DType, std::string>, Tensor> cache_;
};

}  // namespace attnlab
