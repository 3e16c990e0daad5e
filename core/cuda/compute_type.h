#pragma once
// The type CUDA kernels do arithmetic in: float for bf16, the type itself
// otherwise. A plain header (no CUDA runtime), so kernel headers that host
// tests compile (tests/core/flash_emulator.h) can name it too.
#include <type_traits>

#include "core/dtype.h"

namespace attnlab::cuda {

template <class T>
using compute_t = std::conditional_t<std::is_same_v<T, bf16>, float, T>;

}  // namespace attnlab::cuda
