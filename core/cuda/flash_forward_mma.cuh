#pragma once
// The fused attention's forward with tensor cores: bf16 inputs, head dims D and
// Dv in {64, 128}, sm_80 and newer. The same algorithm as flash_forward.cuh
// (FlashAttention-2's loop order, online softmax, the CPU kernel's parameters
// and arithmetic for everything but the two products), with S = Q K^T and
// O += P V done by warp-level 16x16x16 bf16 matrix multiply-accumulates (WMMA,
// f32 accumulation). P is rounded to bf16 for the second product, as
// FlashAttention-2 does; its row sum l stays in f32.
//
// Block: 64 query rows x (batch, head), 4 warps of 16 rows each, key tiles of
// 64. Only the k and v tiles are shared between warps; scores, probabilities
// and the output accumulator of a warp's rows are its own (shared memory, since
// WMMA fragments have no documented element layout to rescale rows in), so
// between warps only the k/v loads need __syncthreads. In the softmax step two
// lanes share a row: lane l owns row 16 w + l / 2 and columns c with c % 2 == l % 2.
#include "core/cuda/flash_kernel.cuh"
#if !defined(ATTNLAB_FLASH_EMULATION)
#include <cuda_bf16.h>
#include <mma.h>
#endif

namespace attnlab::cuda::flash {

// Rows [0, kMmaTile) of a bf16 tile into shared memory with row stride ld,
// zeros past `rows`.
__device__ __forceinline__ void load_tile_bf16(bf16* dst, int64_t ld, const bf16* src, int64_t src_stride, int64_t rows,
                                               int64_t cols) {
  for (int64_t e = threadIdx.x; e < kMmaTile * cols; e += kMmaThreads) {
    const int64_t r = e / cols, c = e - r * cols;
    dst[r * ld + c] = r < rows ? src[r * src_stride + c] : bf16(0.0f);
  }
}

template <class C>
__device__ __forceinline__ C pair_sum(C v) {
  return v + __shfl_xor_sync(0xffffffffu, v, 1);
}
template <class C>
__device__ __forceinline__ C pair_max(C v) {
  const C o = __shfl_xor_sync(0xffffffffu, v, 1);
  return o > v ? o : v;
}

template <FlashScore kScore, int kD, int kDv>
__global__ void __launch_bounds__(kMmaThreads)
    flash_forward_mma_kernel(const FlashKernelParams p, const bf16* __restrict__ q, const bf16* __restrict__ k,
                             const bf16* __restrict__ v, bf16* __restrict__ out, float* __restrict__ lse,
                             bf16* __restrict__ entropy, bf16* __restrict__ sink) {
#if defined(ATTNLAB_FLASH_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  namespace wmma = nvcuda::wmma;
  using C = float;
  constexpr int64_t ldq = mma_ld_bf16(kD), ldv = mma_ld_bf16(kDv), ldp = mma_ld_bf16(kMmaTile);
  constexpr int64_t lds = mma_ld_f32(kMmaTile), ldo = mma_ld_f32(kDv);
  constexpr int kCols = kMmaTile / 2;  // score columns per lane
  constexpr int kOutCols = kDv / 2;    // output columns per lane
  bf16* sQ = shared_tiles<bf16>();
  bf16* sK = sQ + kMmaTile * ldq;
  bf16* sV = sK + kMmaTile * ldq;
  bf16* sP = sV + kMmaTile * ldv;
  float* sS = reinterpret_cast<float*>(sP + kMmaTile * ldp);
  float* sO = sS + kMmaTile * lds;

  const int64_t q_tiles = (p.Tq + kMmaTile - 1) / kMmaTile, k_tiles = (p.Tk + kMmaTile - 1) / kMmaTile;
  const TileOfBlock tb = tile_of_block(blockIdx.x, q_tiles, true);
  const int64_t bh = tb.head, b = bh / p.H, h = bh % p.H, hk = h / p.G, qt = tb.tile;
  const int64_t i0 = qt * kMmaTile, nq = p.Tq - i0 < kMmaTile ? p.Tq - i0 : kMmaTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r0 = 16 * warp;               // the warp's first row in the tile
  const int64_t r = r0 + lane / 2, half = lane % 2;  // this lane's row and column parity
  const int64_t pos = p.pos(i0 + r);
  const KeyRange kr = key_range(p.mask, pos, p.Tk);
  const ScoreFn<C> score = ScoreFn<C>::of(p, h);
  const C scale = static_cast<C>(p.scale), sig_bias = static_cast<C>(p.sigmoid_bias);
  const bf16* kh = k + (b * p.Hkv + hk) * p.Tk * kD;
  const bf16* vh = v + (b * p.Hkv + hk) * p.Tk * kDv;
  load_tile_bf16(sQ, ldq, q + (bh * p.Tq + i0) * kD, kD, nq, kD);
  for (int64_t e = threadIdx.x; e < kMmaTile * kDv; e += kMmaThreads) sO[(e / kDv) * ldo + e % kDv] = 0.0f;
  __syncthreads();  // sO rows are zeroed by other warps' threads than read them

  C m = neg_inf<C>(), l = C(0), u = C(0), s0 = neg_inf<C>();
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int64_t j0 = kt * kMmaTile, nk = p.Tk - j0 < kMmaTile ? p.Tk - j0 : kMmaTile;
    const TileKind kind = attnlab::flash::classify(p.mask, p.pos(i0), p.pos(i0 + nq), j0, j0 + nk, p.Tk);
    if (kind == TileKind::skip) continue;  // uniform over the block
    __syncthreads();  // every warp is done with the previous k and v tiles (and sQ, sO are ready)
    load_tile_bf16(sK, ldq, kh + j0 * kD, kD, nk, kD);
    load_tile_bf16(sV, ldv, vh + j0 * kDv, kDv, nk, kDv);
    __syncthreads();

    // S of the warp's 16 rows: q k^T, 16 keys at a time (k's rows read as a column-major k^T).
    for (int n = 0; n < kMmaTile / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
      for (int kk = 0; kk < kD / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bt;
        wmma::load_matrix_sync(a, reinterpret_cast<const __nv_bfloat16*>(sQ + r0 * ldq + 16 * kk), ldq);
        wmma::load_matrix_sync(bt, reinterpret_cast<const __nv_bfloat16*>(sK + (16 * n) * ldq + 16 * kk), ldq);
        wmma::mma_sync(acc, a, bt, acc);
      }
      wmma::store_matrix_sync(sS + r0 * lds + 16 * n, acc, lds, wmma::mem_row_major);
    }
    __syncwarp();

    // Scores -> probabilities, as flash_forward.cuh with two lanes per row.
    C s[kCols];
    ATTNLAB_UNROLL
    for (int x = 0; x < kCols; ++x) {
      const int64_t c = half + 2 * x, j = j0 + c;
      C th;
      const C sc = score(scale * sS[r * lds + c], pos, j, th);
      const bool visible = r < nq && c < nk && (kind == TileKind::full || kr.visible(j));
      s[x] = visible ? sc : neg_inf<C>();
    }
    if (kt == 0) s0 = s[0];  // key 0: column 0, the even lane's first score
    C alpha = C(1);
    bool live = false;
    if constexpr (kScore == FlashScore::sigmoid) {
      ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) s[x] = s[x] == neg_inf<C>() ? C(0) : fn::sigmoid(s[x] + sig_bias);
    } else {
      C mx = m;
      ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) mx = s[x] > mx ? s[x] : mx;
      mx = pair_max(mx);
      live = mx != neg_inf<C>();
      alpha = live ? fn::exp_(m - mx) : C(1);
      C sum = C(0), us = C(0);
      ATTNLAB_UNROLL
      for (int x = 0; x < kCols; ++x) {
        const C z = s[x] - mx;
        s[x] = live ? fn::exp_(z) : C(0);
        sum += s[x];
        us += s[x] > C(0) ? s[x] * z : C(0);
      }
      sum = pair_sum(sum);
      if (entropy) us = pair_sum(us);
      if (live) {
        u = l > C(0) ? alpha * (u + (m - mx) * l) + us : us;
        l = alpha * l + sum;
        m = mx;
      }
    }
    ATTNLAB_UNROLL
    for (int x = 0; x < kCols; ++x) sP[r * ldp + half + 2 * x] = bf16(s[x]);
    if (live && alpha != C(1)) {
      ATTNLAB_UNROLL
      for (int x = 0; x < kOutCols; ++x) sO[r * ldo + half + 2 * x] *= alpha;
    }
    __syncwarp();

    // O += P v for the warp's rows, 16 output columns at a time.
    for (int nb = 0; nb < kDv / 16; ++nb) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, sO + r0 * ldo + 16 * nb, ldo, wmma::mem_row_major);
      for (int kk = 0; kk < kMmaTile / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> bv;
        wmma::load_matrix_sync(a, reinterpret_cast<const __nv_bfloat16*>(sP + r0 * ldp + 16 * kk), ldp);
        wmma::load_matrix_sync(bv, reinterpret_cast<const __nv_bfloat16*>(sV + (16 * kk) * ldv + 16 * nb), ldv);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(sO + r0 * ldo + 16 * nb, acc, ldo, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (r >= nq) return;
  const int64_t row = bh * p.Tq + i0 + r;
  C inv = C(1);
  if constexpr (kScore == FlashScore::softmax) {
    const bool any = l > C(0);
    inv = any ? C(1) / l : C(1);
    if (half == 0) {
      // A row that sees no key: output 0, lse -inf, and it contributes no gradient.
      const C row_lse = any ? m + fn::log_(l) : neg_inf<C>();
      lse[row] = row_lse;
      if (entropy) entropy[row] = bf16(any ? fn::log_(l) - u / l : C(0));
      if (sink) sink[row] = bf16(any ? fn::exp_(s0 - row_lse) : C(0));
    }
  }
  bf16* orow = out + row * kDv;
  ATTNLAB_UNROLL
  for (int x = 0; x < kOutCols; ++x) orow[half + 2 * x] = bf16(sO[r * ldo + half + 2 * x] * inv);
#endif
}

}  // namespace attnlab::cuda::flash
