#include "core/shape.h"

#include "core/error.h"

namespace attnlab {

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what) {
  int64_t d = dim < 0 ? dim + ndim : dim;
  ATTNLAB_CHECK(d >= 0 && d < ndim, what, ": dim ", dim, " out of range for a ", ndim, "-d tensor");
  return d;
}

}  // namespace attnlab
