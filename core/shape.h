#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace attnlab {

using Shape = std::vector<int64_t>;

int64_t numel_of(const Shape& s);
std::string shape_str(const Shape& s);  // "[2, 3]"
// Resolves a negative dim (-1 = last) against `ndim`; throws naming `what` when out of range.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what);

}  // namespace attnlab
