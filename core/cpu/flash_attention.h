#pragma once
// Pieces shared by the fused CPU attention's forward (flash_attention.cpp) and
// backward (flash_attention_backward.cpp): the tile geometry and the score
// tile s = cap(scale q.k) - alibi, masked (which keys a query sees lives in
// core/flash_mask.h, shared with the CUDA kernels).
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
#include "core/flash_mask.h"
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

// Which keys a query sees and which tiles to skip: core/flash_mask.h, shared
// with the CUDA kernels.
using attnlab::flash::classify;
using attnlab::flash::key_range;
using attnlab::flash::KeyRange;
using attnlab::flash::TileKind;

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
