#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace attnlab {

// The one exception type of attnlab. Its message carries the context a user
// needs to fix the input (op, shapes, dtypes; or file, key, value, expected).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

}  // namespace attnlab

// Throws attnlab::Error with the streamed message when `cond` is false.
#define ATTNLAB_CHECK(cond, ...)                                      \
  do {                                                                \
    if (!(cond)) throw ::attnlab::Error(::attnlab::detail::cat(__VA_ARGS__)); \
  } while (0)
