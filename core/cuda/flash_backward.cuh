#pragma once
// The fused attention's backward kernels: FlashAttention-2's split (Dao,
// "FlashAttention-2: Faster Attention with Better Parallelism and Work
// Partitioning", 2023, alg. 2 and sec. 3.2), made deterministic: instead of
// accumulating dQ with atomics across key-tile blocks, dQ has its own kernel.
//   1. rowdot:  D_i = rowsum(dO o O) (+ dH_i H_i with an entropy term), one warp per row.
//   2. dK, dV:  one block per (batch x kv head, key tile) walks the query tiles
//               of the G query heads sharing the kv head, in a fixed order
//               (head, then tile), accumulating in registers.
//   3. dQ:      one block per (batch x head, query tile) walks the key tiles.
// Each block recomputes its scores and probabilities from q, k and the saved
// log-sum-exp, as the CPU kernel (core/cpu/flash_attention_backward.cpp) does:
//   P = exp(s - lse), dP = dO V^T, dS = P o (dP - D - dH log P)  (softmax)
//   P = sigmoid(s + b),           dS = dP o P (1 - P)           (sigmoid)
//   softcap: dS *= 1 - tanh^2;  dV = P^T dO, dK = dS^T (scale q), dQ = scale dS K.
// No float atomics anywhere: every gradient element sums its terms in one
// fixed order, so results are the same bits run to run.
#include "core/cuda/flash_kernel.cuh"

namespace attnlab::cuda::flash {

using attnlab::flash::key_range;
using attnlab::flash::KeyRange;
using attnlab::flash::TileKind;

constexpr int kRowdotThreads = 256;  // 8 warps, one row each

// drow[i] = sum_c dO_ic O_ic (+ dH_i H_i): a warp per row, lanes strided over
// the row, then a fixed butterfly.
template <class T>
__global__ void flash_rowdot_kernel(const T* __restrict__ out, const T* __restrict__ dout,
                                    const T* __restrict__ entropy, const T* __restrict__ dentropy, int64_t rows,
                                    int64_t Dv, compute_t<T>* __restrict__ drow) {
  using C = compute_t<T>;
  const int lane = threadIdx.x % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (kRowdotThreads / 32);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * (kRowdotThreads / 32) + threadIdx.x / 32; row < rows;
       row += warps) {
    C acc = C(0);
    for (int64_t c = lane; c < Dv; c += 32)
      acc += static_cast<C>(dout[row * Dv + c]) * static_cast<C>(out[row * Dv + c]);
ATTNLAB_UNROLL
    for (int o = 16; o > 0; o /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (lane == 0)
      drow[row] = acc + (dentropy ? static_cast<C>(dentropy[row]) * static_cast<C>(entropy[row]) : C(0));
  }
}

// What the gradient kernels read besides q, k, v.
template <class T>
struct BwdInputs {
  const T* q;
  const T* k;
  const T* v;
  const T* dout;                // [B, H, Tq, Dv]
  const compute_t<T>* lse;      // [B, H, Tq] (softmax)
  const compute_t<T>* drow;     // [B, H, Tq]: D_i (+ dH_i H_i) (softmax)
  const T* dentropy;            // [B, H, Tq] or null: no entropy term
};

// dK, dV of key tile `tile` of kv head (b, hk). Thread layout as in the
// forward with the roles swapped: thread t owns key row j = t / 4 and query
// columns r = lane + 4x of each block. Block y holds output columns
// [c0, c0 + kFlashMaxCols) of dK and of dV.
template <class T, FlashScore kScore, int kCols>
__global__ void __launch_bounds__(kFlashThreads)
    flash_dkdv_kernel(const FlashKernelParams p, const BwdInputs<T> in, T* __restrict__ dk, T* __restrict__ dv) {
  using C = compute_t<T>;
  const TileOfBlock tb = tile_of_block(blockIdx.x, p.k_tiles(), false);
  const int64_t bhk = tb.head, b = bhk / p.Hkv, hk = bhk % p.Hkv, kt = tb.tile;
  const int64_t j0 = kt * kFlashTile, nk = p.keys_in(kt);
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kFlashMaxCols;
  const int64_t wk = p.D - c0 < kFlashMaxCols ? p.D - c0 : kFlashMaxCols;    // <= 0: no dK columns here
  const int64_t wv = p.Dv - c0 < kFlashMaxCols ? p.Dv - c0 : kFlashMaxCols;  // <= 0: no dV columns here
  const int64_t ldk = padded(p.D), ldv = padded(p.Dv), ldp = padded(kFlashTile);
  C* sK = shared_tiles<C>();
  C* sV = sK + kFlashTile * ldk;
  C* sQ = sV + kFlashTile * ldv;
  C* sdO = sQ + kFlashTile * ldk;
  C* sP = sdO + kFlashTile * ldv;  // [key j][query r]
  C* sdS = sP + kFlashTile * ldp;  // [key j][query r]
  C* sLse = sdS + kFlashTile * ldp;
  C* sDrow = sLse + kFlashTile;
  C* sDh = sDrow + kFlashTile;

  const int jr = threadIdx.x / kFlashLanesPerRow, lane = threadIdx.x % kFlashLanesPerRow;
  const int64_t j = j0 + jr;
  const C scale = static_cast<C>(p.scale), sig_bias = static_cast<C>(p.sigmoid_bias);
  const bool softcap = p.softcap > 0, with_entropy = in.dentropy != nullptr;
  load_tile(sK, in.k + (bhk * p.Tk + j0) * p.D, p.D, nk, p.D, C(1));
  load_tile(sV, in.v + (bhk * p.Tk + j0) * p.Dv, p.Dv, nk, p.Dv, C(1));

  C dk_acc[kCols], dv_acc[kCols];
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) dk_acc[x] = dv_acc[x] = C(0);

  for (int64_t h = hk * p.G; h < (hk + 1) * p.G; ++h) {
    const ScoreFn<C> score = ScoreFn<C>::of(p, h);
    const int64_t bh = b * p.H + h;
    for (int64_t qt = 0; qt < p.q_tiles(); ++qt) {
      const TileKind kind = p.block_kind(qt, kt);
      if (kind == TileKind::skip) continue;  // uniform over the block
      const int64_t i0 = qt * kFlashTile, nq = p.rows_in(qt), row0 = bh * p.Tq + i0;
      __syncthreads();  // the previous block's reads of the q-side tiles are done (and sK, sV are loaded)
      load_tile(sQ, in.q + row0 * p.D, p.D, nq, p.D, scale);
      load_tile(sdO, in.dout + row0 * p.Dv, p.Dv, nq, p.Dv, C(1));
      if (threadIdx.x < kFlashTile) {
        const int e = threadIdx.x;
        const bool ok = e < nq && kScore == FlashScore::softmax;
        sLse[e] = ok ? in.lse[row0 + e] : neg_inf<C>();
        sDrow[e] = ok ? in.drow[row0 + e] : C(0);
        sDh[e] = ok && with_entropy ? static_cast<C>(in.dentropy[row0 + e]) : C(0);
      }
      __syncthreads();

      // s and dP of key jr against query rows r = lane + 4x.
      C s[kFlashTileCols], dp[kFlashTileCols];
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) s[x] = dp[x] = C(0);
      for (int64_t d = 0; d < p.D; ++d) {
        const C kd = sK[jr * ldk + d];
ATTNLAB_UNROLL
        for (int x = 0; x < kFlashTileCols; ++x) s[x] += sQ[(lane + kFlashLanesPerRow * x) * ldk + d] * kd;
      }
      for (int64_t c = 0; c < p.Dv; ++c) {
        const C vc = sV[jr * ldv + c];
ATTNLAB_UNROLL
        for (int x = 0; x < kFlashTileCols; ++x) dp[x] += sdO[(lane + kFlashLanesPerRow * x) * ldv + c] * vc;
      }
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) {
        const int r = lane + kFlashLanesPerRow * x;
        const int64_t pos = p.pos(i0 + r);
        C th;
        const C sc = score(s[x], pos, j, th);
        const bool visible =
            r < nq && jr < nk && (kind == TileKind::full || key_range(p.mask, pos, p.Tk).visible(j));
        const PairGrad<C> g =
            pair_grad<C, kScore>(sc, visible, dp[x], th, softcap, sLse[r], sDrow[r], sDh[r], with_entropy, sig_bias);
        sP[jr * ldp + r] = g.p;
        sdS[jr * ldp + r] = g.ds;
      }
      __syncwarp();  // row jr of sP, sdS was written by this warp only

      // dV_j += sum_r P_rj dO_r, dK_j += sum_r dS_rj (scale q_r), r in order.
      for (int64_t r = 0; r < nq; ++r) {
        const C pv = sP[jr * ldp + r], ds = sdS[jr * ldp + r];
        const C* qrow = sQ + r * ldk + c0;
        const C* dorow = sdO + r * ldv + c0;
ATTNLAB_UNROLL
        for (int x = 0; x < kCols; ++x) {
          const int64_t col = lane + kFlashLanesPerRow * x;
          if (col < wv) dv_acc[x] += pv * dorow[col];
          if (col < wk) dk_acc[x] += ds * qrow[col];
        }
      }
    }
  }

  if (jr >= nk) return;
  const int64_t key_row = bhk * p.Tk + j;
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) {
    const int64_t col = lane + kFlashLanesPerRow * x;
    if (col < wk) dk[key_row * p.D + c0 + col] = T(dk_acc[x]);
    if (col < wv) dv[key_row * p.Dv + c0 + col] = T(dv_acc[x]);
  }
}

// dQ of query tile `tile` of head (b, h): thread t owns query row r = t / 4
// and key columns c = lane + 4x of each key tile; block y holds dQ's output
// columns [c0, c0 + kFlashMaxCols).
template <class T, FlashScore kScore, int kCols>
__global__ void __launch_bounds__(kFlashThreads)
    flash_dq_kernel(const FlashKernelParams p, const BwdInputs<T> in, T* __restrict__ dq) {
  using C = compute_t<T>;
  const TileOfBlock tb = tile_of_block(blockIdx.x, p.q_tiles(), true);
  const int64_t bh = tb.head, b = bh / p.H, h = bh % p.H, hk = h / p.G, qt = tb.tile;
  const int64_t i0 = qt * kFlashTile, nq = p.rows_in(qt), row0 = bh * p.Tq + i0;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kFlashMaxCols;
  const int64_t wq = p.D - c0 < kFlashMaxCols ? p.D - c0 : kFlashMaxCols;
  const int64_t ldk = padded(p.D), ldv = padded(p.Dv), ldp = padded(kFlashTile);
  C* sQ = shared_tiles<C>();
  C* sdO = sQ + kFlashTile * ldk;
  C* sK = sdO + kFlashTile * ldv;
  C* sV = sK + kFlashTile * ldk;
  C* sdS = sV + kFlashTile * ldv;  // [query r][key c]

  const int r = threadIdx.x / kFlashLanesPerRow, lane = threadIdx.x % kFlashLanesPerRow;
  const int64_t pos = p.pos(i0 + r);
  const KeyRange kr = key_range(p.mask, pos, p.Tk);
  const ScoreFn<C> score = ScoreFn<C>::of(p, h);
  const C sig_bias = static_cast<C>(p.sigmoid_bias);
  const bool softcap = p.softcap > 0, with_entropy = in.dentropy != nullptr;
  const bool row_ok = r < nq && kScore == FlashScore::softmax;
  const C lse = row_ok ? in.lse[row0 + r] : neg_inf<C>();
  const C drow = row_ok ? in.drow[row0 + r] : C(0);
  const C dh = row_ok && with_entropy ? static_cast<C>(in.dentropy[row0 + r]) : C(0);
  load_tile(sQ, in.q + row0 * p.D, p.D, nq, p.D, static_cast<C>(p.scale));
  load_tile(sdO, in.dout + row0 * p.Dv, p.Dv, nq, p.Dv, C(1));
  const T* kh = in.k + (b * p.Hkv + hk) * p.Tk * p.D;
  const T* vh = in.v + (b * p.Hkv + hk) * p.Tk * p.Dv;

  C dq_acc[kCols];
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) dq_acc[x] = C(0);

  for (int64_t kt = 0; kt < p.k_tiles(); ++kt) {
    const TileKind kind = p.block_kind(qt, kt);
    if (kind == TileKind::skip) continue;  // uniform over the block
    const int64_t j0 = kt * kFlashTile, nk = p.keys_in(kt);
    __syncthreads();  // the previous tile's reads of sK, sV are done (and sQ, sdO are loaded)
    load_tile(sK, kh + j0 * p.D, p.D, nk, p.D, C(1));
    load_tile(sV, vh + j0 * p.Dv, p.Dv, nk, p.Dv, C(1));
    __syncthreads();

    C s[kFlashTileCols], dp[kFlashTileCols];
ATTNLAB_UNROLL
    for (int x = 0; x < kFlashTileCols; ++x) s[x] = dp[x] = C(0);
    for (int64_t d = 0; d < p.D; ++d) {
      const C qd = sQ[r * ldk + d];
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) s[x] += qd * sK[(lane + kFlashLanesPerRow * x) * ldk + d];
    }
    for (int64_t c = 0; c < p.Dv; ++c) {
      const C g = sdO[r * ldv + c];
ATTNLAB_UNROLL
      for (int x = 0; x < kFlashTileCols; ++x) dp[x] += g * sV[(lane + kFlashLanesPerRow * x) * ldv + c];
    }
ATTNLAB_UNROLL
    for (int x = 0; x < kFlashTileCols; ++x) {
      const int64_t c = lane + kFlashLanesPerRow * x, j = j0 + c;
      C th;
      const C sc = score(s[x], pos, j, th);
      const bool visible = r < nq && c < nk && (kind == TileKind::full || kr.visible(j));
      sdS[r * ldp + c] =
          pair_grad<C, kScore>(sc, visible, dp[x], th, softcap, lse, drow, dh, with_entropy, sig_bias).ds;
    }
    __syncwarp();  // row r of sdS was written by this warp only

    // dQ_r += sum_c dS_rc k_c (scaled once at the end), c in order.
    for (int64_t c = 0; c < nk; ++c) {
      const C ds = sdS[r * ldp + c];
      const C* krow = sK + c * ldk + c0;
ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) {
        const int64_t col = lane + kFlashLanesPerRow * x;
        if (col < wq) dq_acc[x] += ds * krow[col];
      }
    }
  }

  if (r >= nq) return;
  const C scale = static_cast<C>(p.scale);
  T* dqrow = dq + (row0 + r) * p.D + c0;
ATTNLAB_UNROLL
  for (int x = 0; x < kCols; ++x) {
    const int64_t col = lane + kFlashLanesPerRow * x;
    if (col < wq) dqrow[col] = T(dq_acc[x] * scale);
  }
}

}  // namespace attnlab::cuda::flash
