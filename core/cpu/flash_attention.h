#pragma once
// Pieces shared by the fused CPU attention's forward (flash_attention.cpp) and
// backward (flash_attention_backward.cpp): the tile geometry, which keys a
// query sees, and the score tile s = cap(scale q.k) - alibi, masked.
//
// The algorithm is FlashAttention's (Dao et al., "FlashAttention: Fast and
// Memory-Efficient Exact Attention with IO-Awareness", 2022) in the loop order of
// Dao, "FlashAttention-2: Faster Attention with Better Parallelism and Work
// Partitioning", 2023: a query tile walks the key tiles with an online softmax
// and never holds more than one [kTileQ, kTileK] block of scores.
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/attention_params.h"
#include "core/functors.h"
#include "core/tensor.h"

namespace attnlab::cpu::flash {

// Tile sizes (rows of q, rows of k per block): small enough that a tile's
// q, k, v, scores and output stay in L2 (5 x 16 KB at D = 64 in f32).
constexpr int64_t kTileQ = 64;
constexpr int64_t kTileK = 64;

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using CMap = Eigen::Map<const Mat<T>>;
template <class T>
using MMap = Eigen::Map<Mat<T>>;

struct Dims {
  int64_t B, H, Hkv, G, Tq, Tk, D, Dv;
  int64_t q_tiles() const { return (Tq + kTileQ - 1) / kTileQ; }
  int64_t k_tiles() const { return (Tk + kTileK - 1) / kTileK; }
};

inline Dims dims_of(const Tensor& q, const Tensor& k, const Tensor& v) {
  Dims d{q.size(0), q.size(1), k.size(1), 0, q.size(2), k.size(2), q.size(3), v.size(3)};
  d.G = d.H / d.Hkv;
  return d;
}

// The keys query position `pos` sees: [0, sink_end) and [lo, hi), both within [0, Tk).
struct KeyRange {
  int64_t sink_end, lo, hi;
  bool visible(int64_t j) const { return j < sink_end || (lo <= j && j < hi); }
};

inline KeyRange key_range(const FlashAttentionParams& p, int64_t pos, int64_t Tk) {
  int64_t causal_end = std::clamp<int64_t>(pos + 1, 0, Tk);
  int64_t win_lo = std::clamp<int64_t>(pos - p.window + 1, 0, Tk);
  switch (p.mask) {
    case FlashMask::none: return {0, 0, Tk};
    case FlashMask::causal: return {0, 0, causal_end};
    case FlashMask::window: return {0, win_lo, causal_end};
    case FlashMask::sinks: return {std::min(p.sinks, causal_end), win_lo, causal_end};
  }
  return {0, 0, Tk};
}

enum class TileKind { skip, full, partial };

// Keys [j0, j1) against query positions [pos0, pos1). Both bounds of a row's
// range grow with its position, so the first and last rows bound the tile.
inline TileKind classify(const FlashAttentionParams& p, int64_t pos0, int64_t pos1, int64_t j0, int64_t j1,
                         int64_t Tk) {
  KeyRange first = key_range(p, pos0, Tk), last = key_range(p, pos1 - 1, Tk);
  bool touches = j0 < last.sink_end || (j1 > first.lo && j0 < last.hi);
  if (!touches) return TileKind::skip;
  bool all = j1 <= first.sink_end || (j0 >= last.lo && j1 <= first.hi);
  return all ? TileKind::full : TileKind::partial;
}

// Row reductions kept in 16 partial results: the compiler may not reorder one
// running float sum into vector lanes (no -ffast-math), but it does vectorise
// 16 independent ones. The order is fixed, so results stay deterministic.
constexpr int64_t kLanes = 16;

template <class T, class F>
T lane_sum(int64_t n, F&& term) {
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += term(i + l);
  T s = 0;
  for (; i < n; ++i) s += term(i);
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  return s;
}

template <class T>
T lane_max(const T* x, int64_t n, T init) {
  T acc[kLanes];
  std::fill(acc, acc + kLanes, init);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
  T m = init;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int64_t l = 0; l < kLanes; ++l) m = acc[l] > m ? acc[l] : m;
  return m;
}

// The per-call constants of the kernel.
template <class T>
struct Ctx {
  Dims d;
  const FlashAttentionParams* p;
  T scale;
  const T* q;
  const T* k;
  const T* v;

  const T* q_rows(int64_t b, int64_t h, int64_t i0) const { return q + ((b * d.H + h) * d.Tq + i0) * d.D; }
  const T* k_rows(int64_t b, int64_t hk, int64_t j0) const { return k + ((b * d.Hkv + hk) * d.Tk + j0) * d.D; }
  const T* v_rows(int64_t b, int64_t hk, int64_t j0) const { return v + ((b * d.Hkv + hk) * d.Tk + j0) * d.Dv; }
  int64_t row_index(int64_t b, int64_t h, int64_t i) const { return (b * d.H + h) * d.Tq + i; }
  T slope(int64_t h) const { return p->alibi_slopes.empty() ? T(0) : static_cast<T>(p->alibi_slopes[h]); }
  int64_t pos(int64_t i) const { return p->q_offset + i; }
};

// qs[nq, D] = scale * q rows i0 .. i0 + nq of head (b, h).
template <class T>
void scaled_q(const Ctx<T>& c, int64_t b, int64_t h, int64_t i0, int64_t nq, T* qs) {
  const T* src = c.q_rows(b, h, i0);
  for (int64_t x = 0; x < nq * c.d.D; ++x) qs[x] = c.scale * src[x];
}

// s[nq, nk] for query rows i0.. of head h against keys j0..:
//   s = cap(qs k^T) - slope |pos - j|, -inf where the mask hides the key.
// With a softcap, th keeps tanh(x / cap) for the backward's chain rule.
template <class T>
void score_tile(const Ctx<T>& c, int64_t h, const T* qs, const T* k, int64_t i0, int64_t nq, int64_t j0,
                int64_t nk, TileKind kind, T* s, T* th) {
  MMap<T> S(s, nq, nk);
  S.noalias() = CMap<T>(qs, nq, c.d.D) * CMap<T>(k, nk, c.d.D).transpose();
  const FlashAttentionParams& p = *c.p;
  if (p.softcap > 0) {
    const T cap = static_cast<T>(p.softcap), inv = T(1) / cap;
    for (int64_t x = 0; x < nq * nk; ++x) {
      T t = fn::tanh_(s[x] * inv);
      th[x] = t;
      s[x] = cap * t;
    }
  }
  if (T slope = c.slope(h); slope != T(0)) {
    for (int64_t r = 0; r < nq; ++r) {
      const T pos = static_cast<T>(c.pos(i0 + r));
      T* row = s + r * nk;
      for (int64_t x = 0; x < nk; ++x) row[x] -= slope * std::abs(pos - static_cast<T>(j0 + x));
    }
  }
  if (kind == TileKind::partial) {
    const T ninf = -std::numeric_limits<T>::infinity();
    for (int64_t r = 0; r < nq; ++r) {
      KeyRange kr = key_range(p, c.pos(i0 + r), c.d.Tk);
      T* row = s + r * nk;
      for (int64_t x = 0; x < nk; ++x) row[x] = kr.visible(j0 + x) ? row[x] : ninf;
    }
  }
}

}  // namespace attnlab::cpu::flash
