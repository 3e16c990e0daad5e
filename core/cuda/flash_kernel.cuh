#pragma once
// Device pieces shared by the fused attention's kernels (flash_forward.cuh,
// flash_backward.cuh): tile loads into shared memory, the reductions over one
// tile row's lanes, the score of one (query, key) pair and the backward's dS of
// one pair. The arithmetic mirrors the CPU kernel (core/cpu/flash_attention.h,
// flash_attention_backward.cpp) operation for operation, so f32 and f64 agree
// with it to rounding.
//
// The kernel headers need no CUDA runtime header, only the builtins
// (threadIdx, __syncthreads, __syncwarp, __shfl_xor_sync, dynamic shared
// memory): tests/core/flash_emulator.h supplies those on the host, so the
// kernels' own source runs in the host tests (test_cuda_flash_emulated.cpp).
#include <cstdint>
#include <limits>

#include "core/attention_params.h"
#include "core/cuda/compute_type.h"
#include "core/cuda/flash_geometry.h"
#include "core/functors.h"
#include "core/macros.h"

namespace attnlab::cuda::flash {

template <class C>
__device__ __forceinline__ C neg_inf() {
  return -std::numeric_limits<C>::infinity();
}

// The block's dynamic shared memory (sized by the launch), as C elements.
template <class C>
__device__ __forceinline__ C* shared_tiles() {
#ifdef ATTNLAB_FLASH_EMULATION
  return reinterpret_cast<C*>(::attnlab::emu::dynamic_shared());
#else
  extern __shared__ __align__(128) unsigned char flash_smem[];  // WMMA tiles need 32-byte alignment
  return reinterpret_cast<C*>(flash_smem);
#endif
}

// Rows [0, kFlashTile) of a tile into shared memory (row stride padded(cols)):
// dst[r][c] = multiplier * src[r * src_stride + c] for r < rows, 0 beyond (a
// padded row must hold zeros, not stale values: 0 * NaN would leak into sums).
// Every thread of the block calls it; the caller synchronises afterwards.
template <class T, class C>
__device__ void load_tile(C* dst, const T* src, int64_t src_stride, int64_t rows, int64_t cols, C multiplier) {
  const int64_t ld = padded(cols);
  for (int64_t e = threadIdx.x; e < kFlashTile * cols; e += kFlashThreads) {
    const int64_t r = e / cols, c = e - r * cols;
    dst[r * ld + c] = r < rows ? multiplier * static_cast<C>(src[r * src_stride + c]) : C(0);
  }
}

// Reductions over the kFlashLanesPerRow lanes of one tile row (neighbours in a
// warp). Every lane of the warp must call them (no divergent callers); the
// butterfly gives all lanes of a row the same bits, since a + b == b + a.
template <class C>
__device__ __forceinline__ C row_sum(C v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}
template <class C>
__device__ __forceinline__ C row_max(C v) {
  C o = __shfl_xor_sync(0xffffffffu, v, 1);
  v = o > v ? o : v;
  o = __shfl_xor_sync(0xffffffffu, v, 2);
  return o > v ? o : v;
}
static_assert(kFlashLanesPerRow == 4, "row_sum / row_max shuffle over 4 lanes");

// s = cap(dot) - slope |pos - j| for one query head, as the CPU's score_tile:
// dot is already scale * q.k; th keeps tanh(dot / cap) for the chain rule.
template <class C>
struct ScoreFn {
  C cap, inv_cap, slope;

  __device__ static ScoreFn of(const FlashKernelParams& p, int64_t h) {
    const C cap = static_cast<C>(p.softcap);
    return {cap, p.softcap > 0 ? C(1) / cap : C(0), p.alibi ? static_cast<C>(p.slopes[h]) : C(0)};
  }

  __device__ __forceinline__ C operator()(C dot, int64_t pos, int64_t j, C& th) const {
    C s = dot;
    th = C(0);
    if (cap > C(0)) {
      th = fn::tanh_(s * inv_cap);
      s = cap * th;
    }
    if (slope != C(0)) {
      const C dist = static_cast<C>(pos) - static_cast<C>(j);
      s -= slope * (dist < C(0) ? -dist : dist);
    }
    return s;
  }
};

// The backward of one (query row, key) pair with score s (already masked out
// by `visible` = false), dp = dO . v_j, and the row's saved statistics:
//   softmax: P = exp(s - lse), dS = P (dP - D' - dH log P)   (dH = 0 without an entropy term)
//   sigmoid: P = sigmoid(s + b), dS = dP P (1 - P)
//   softcap: dS *= 1 - th^2.
// A row that saw no key (lse = -inf) and a hidden key give P = 0 and dS = 0;
// log P counts as 0 there, as on the CPU, so P log P stays 0 instead of NaN.
template <class C>
struct PairGrad {
  C p, ds;
};
template <class C, FlashScore kScore>
__device__ __forceinline__ PairGrad<C> pair_grad(C s, bool visible, C dp, C th, bool softcap, C lse, C drow,
                                                         C dh, bool entropy, C sigmoid_bias) {
  C p, ds;
  if constexpr (kScore == FlashScore::sigmoid) {
    p = visible ? fn::sigmoid(s + sigmoid_bias) : C(0);
    ds = dp * (p * (C(1) - p));
  } else {
    const bool live = visible && lse != neg_inf<C>();
    C lp = live ? s - lse : C(0);
    p = live ? fn::exp_(lp) : C(0);
    lp = p > C(0) ? lp : C(0);
    ds = entropy ? p * (dp - drow - dh * lp) : p * (dp - drow);
  }
  if (softcap) ds *= C(1) - th * th;
  return {p, ds};
}

}  // namespace attnlab::cuda::flash
