#pragma once
// The fused attention's forward kernel: FlashAttention-2's loop order (Dao,
// "FlashAttention-2: Faster Attention with Better Parallelism and Work
// Partitioning", 2023, alg. 1): one block per (query tile, batch x head) walks
// the key tiles through shared memory with an online softmax (Milakov &
// Gimelshein, "Online normalizer calculation for softmax", 2018), skipping the
// tiles the mask hides (core/flash_mask.h, the CPU kernel's own geometry).
// A plain SIMT kernel for every dtype and head dim: bf16 is loaded as float and
// everything is computed in compute_t<T>. Thread layout: flash_geometry.h;
// launched by flash_attention.cu.
#include "core/cuda/flash_kernel.cuh"

namespace attnlab::cuda::flash {

using attnlab::flash::key_range;
using attnlab::flash::KeyRange;
using attnlab::flash::TileKind;

// Per row (replicated on its lanes) the running max m, the running sum
// l = sum_j exp(s_j - m) and the unnormalised output o = sum_j exp(s_j - m) v_j,
// rescaled by exp(m - m') when a key tile raises the max to m'. For the
// entropy H = lse - E_p[s]: u = sum_j exp(s_j - m) (s_j - m), rescaled as
// u' = exp(m - m') (u + (m - m') l); then H = log l - u / l. For the sink mass
// the score s_0 of key 0; then p_0 = exp(s_0 - lse). As the CPU's forward_tile.
//
// Block (x, y): x picks the head and query tile, y the chunk of kFlashMaxCols
// output columns; the statistics are written by the y = 0 blocks.
template <class T, FlashScore kScore, int kCols>
__global__ void __launch_bounds__(kFlashThreads)
    flash_forward_kernel(const FlashKernelParams p, const T* __restrict__ q, const T* __restrict__ k,
                         const T* __restrict__ v, T* __restrict__ out, compute_t<T>* __restrict__ lse,
                         T* __restrict__ entropy, T* __restrict__ sink) {
  using C = compute_t<T>;
  const TileOfBlock tb = tile_of_block(blockIdx.x, p.q_tiles(), true);
  const int64_t bh = tb.head, b = bh / p.H, h = bh % p.H, hk = h / p.G, qt = tb.tile;
  const int64_t i0 = qt * kFlashTile, nq = p.rows_in(qt);
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kFlashMaxCols;
  const int64_t wv = p.Dv - c0 < kFlashMaxCols ? p.Dv - c0 : kFlashMaxCols;  // this block's columns of v
  const int64_t ldq = padded(p.D), ldv = padded(wv), ldp = padded(kFlashTile);
  C* sQ = shared_tiles<C>();
  C* sK = sQ + kFlashTile * ldq;
  C* sV = sK + kFlashTile * ldq;
  C* sP = sV + kFlashTile * ldv;

  const int r = threadIdx.x / kFlashLanesPerRow, lane = threadIdx.x % kFlashLanesPerRow;
  const int64_t pos = p.pos(i0 + r);
  const KeyRange kr = key_range(p.mask, pos, p.Tk);
  const ScoreFn<C> score = ScoreFn<C>::of(p, h);
  const C sig_bias = static_cast<C>(p.sigmoid_bias);
  const T* kh = k + (b * p.Hkv + hk) * p.Tk * p.D;
  const T* vh = v + (b * p.Hkv + hk) * p.Tk * p.Dv + c0;
  load_tile(sQ, q + (bh * p.Tq + i0) * p.D, p.D, nq, p.D, static_cast<C>(p.scale));

  C m = neg_inf<C>(), l = C(0), u = C(0), s0 = neg_inf<C>();
  C o[kCols];
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) o[x] = C(0);

  for (int64_t kt = 0; kt < p.k_tiles(); ++kt) {
    const TileKind kind = p.block_kind(qt, kt);
    if (kind == TileKind::skip) continue;  // uniform over the block
    const int64_t j0 = kt * kFlashTile, nk = p.keys_in(kt);
    __syncthreads();  // the previous tile's reads of sK, sV, sP are done
    load_tile(sK, kh + j0 * p.D, p.D, nk, p.D, C(1));
    load_tile(sV, vh + j0 * p.Dv, p.Dv, nk, wv, C(1));
    __syncthreads();

    // This thread's scores: row r, columns c = lane + kFlashLanesPerRow * x.
    C s[kFlashTileCols];
ATTNLAB_UNROLL
    for (int x = 0; x < kFlashTileCols; ++x) s[x] = C(0);
    for (int64_t d = 0; d < p.D; ++d) {
      const C qd = sQ[r * ldq + d];
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) s[x] += qd * sK[(lane + kFlashLanesPerRow * x) * ldq + d];
    }
ATTNLAB_UNROLL
    for (int x = 0; x < kFlashTileCols; ++x) {
      const int64_t c = lane + kFlashLanesPerRow * x, j = j0 + c;
      C th;
      const C sc = score(s[x], pos, j, th);
      const bool visible = r < nq && c < nk && (kind == TileKind::full || kr.visible(j));
      s[x] = visible ? sc : neg_inf<C>();
    }
    if (kt == 0) s0 = s[0];  // key 0 is column 0: lane 0's first score (only lane 0 writes the sink mass)

    C pr[kFlashTileCols];
    if constexpr (kScore == FlashScore::sigmoid) {
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) pr[x] = s[x] == neg_inf<C>() ? C(0) : fn::sigmoid(s[x] + sig_bias);
    } else {
      C mx = m;
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) mx = s[x] > mx ? s[x] : mx;
      mx = row_max(mx);
      // live: the row has seen a key. Everything below runs on every lane
      // (the shuffles need the whole warp); a dead row only keeps p = 0.
      const bool live = mx != neg_inf<C>();
      const C alpha = live ? fn::exp_(m - mx) : C(1);  // 0 on the first visible tile (m = -inf)
      C sum = C(0), us = C(0);
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) {
        const C z = s[x] - mx;
        pr[x] = live ? fn::exp_(z) : C(0);
        sum += pr[x];
        us += pr[x] > C(0) ? pr[x] * z : C(0);  // a hidden key: p = 0 and z = -inf, no term
      }
      sum = row_sum(sum);
      if (entropy) us = row_sum(us);  // entropy is uniform over the launch
      if (live) {
        u = l > C(0) ? alpha * (u + (m - mx) * l) + us : us;
        l = alpha * l + sum;
        m = mx;
        if (alpha != C(1)) {
ATTNLAB_UNROLL
          for (int x = 0; x < kCols; ++x) o[x] *= alpha;
        }
      }
    }

    // o += P v over this tile: the row's probabilities go through shared
    // memory to the row's own lanes (same warp: __syncwarp suffices).
ATTNLAB_UNROLL
    for (int x = 0; x < kFlashTileCols; ++x) sP[r * ldp + lane + kFlashLanesPerRow * x] = pr[x];
    __syncwarp();
    for (int64_t c = 0; c < nk; ++c) {
      const C pc = sP[r * ldp + c];
      const C* vrow = sV + c * ldv;
ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) {
        const int64_t col = lane + kFlashLanesPerRow * x;
        if (col < wv) o[x] += pc * vrow[col];
      }
    }
  }

  if (r >= nq) return;
  const int64_t row = bh * p.Tq + i0 + r;
  if constexpr (kScore == FlashScore::softmax) {
    const bool any = l > C(0);
    if (any) {
      const C inv = C(1) / l;
ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) o[x] *= inv;
    }
    if (blockIdx.y == 0 && lane == 0) {
      // A row that sees no key: output 0, lse -inf, and it contributes no gradient.
      const C row_lse = any ? m + fn::log_(l) : neg_inf<C>();
      lse[row] = row_lse;
      if (entropy) entropy[row] = T(any ? fn::log_(l) - u / l : C(0));
      if (sink) sink[row] = T(any ? fn::exp_(s0 - row_lse) : C(0));  // exp(-inf) = 0 where key 0 is hidden
    }
  }
  T* orow = out + row * p.Dv + c0;
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) {
    const int64_t col = lane + kFlashLanesPerRow * x;
    if (col < wv) orow[col] = T(o[x]);
  }
}

}  // namespace attnlab::cuda::flash
