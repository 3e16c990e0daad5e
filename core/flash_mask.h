#pragma once
// Which keys a query of the fused attention sees, written once for both
// backends: the CPU kernel (core/cpu/flash_attention*.cpp) and the CUDA kernels
// (core/cuda/flash_attention*.cu) evaluate the same functions, so a tile one
// skips the other skips too. Plain C++ apart from ATTNLAB_HOST_DEVICE (no
// Eigen, nothing a kernel cannot take by value).
//
// FlashAttentionParams holds a std::vector (the ALiBi slopes) and so cannot go
// to a kernel; the mask's three fields travel as FlashMaskSpec instead.
#include <cstdint>

#include "core/attention_params.h"
#include "core/macros.h"

namespace attnlab::flash {

struct FlashMaskSpec {
  FlashMask mask;
  int64_t window, sinks;
};

inline FlashMaskSpec mask_spec(const FlashAttentionParams& p) { return {p.mask, p.window, p.sinks}; }

ATTNLAB_HOST_DEVICE int64_t clamp_index(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

// The keys query position `pos` sees: [0, sink_end) and [lo, hi), both within [0, Tk).
struct KeyRange {
  int64_t sink_end, lo, hi;
  ATTNLAB_HOST_DEVICE bool visible(int64_t j) const { return j < sink_end || (lo <= j && j < hi); }
};

ATTNLAB_HOST_DEVICE KeyRange key_range(const FlashMaskSpec& m, int64_t pos, int64_t Tk) {
  const int64_t causal_end = clamp_index(pos + 1, 0, Tk);
  const int64_t win_lo = clamp_index(pos - m.window + 1, 0, Tk);
  switch (m.mask) {
    case FlashMask::none: return {0, 0, Tk};
    case FlashMask::causal: return {0, 0, causal_end};
    case FlashMask::window: return {0, win_lo, causal_end};
    case FlashMask::sinks: return {m.sinks < causal_end ? m.sinks : causal_end, win_lo, causal_end};
  }
  return {0, 0, Tk};
}

enum class TileKind { skip, full, partial };

// Keys [j0, j1) against query positions [pos0, pos1). Both bounds of a row's
// range grow with its position, so the first and last rows bound the tile.
ATTNLAB_HOST_DEVICE TileKind classify(const FlashMaskSpec& m, int64_t pos0, int64_t pos1, int64_t j0, int64_t j1,
                                      int64_t Tk) {
  const KeyRange first = key_range(m, pos0, Tk), last = key_range(m, pos1 - 1, Tk);
  const bool touches = j0 < last.sink_end || (j1 > first.lo && j0 < last.hi);
  if (!touches) return TileKind::skip;
  const bool all = j1 <= first.sink_end || (j0 >= last.lo && j1 <= first.hi);
  return all ? TileKind::full : TileKind::partial;
}

// The host kernels hold the whole parameter struct.
inline KeyRange key_range(const FlashAttentionParams& p, int64_t pos, int64_t Tk) {
  return key_range(mask_spec(p), pos, Tk);
}
inline TileKind classify(const FlashAttentionParams& p, int64_t pos0, int64_t pos1, int64_t j0, int64_t j1,
                         int64_t Tk) {
  return classify(mask_spec(p), pos0, pos1, j0, j1, Tk);
}

}  // namespace attnlab::flash
