#pragma once
// The fused attention's backward with tensor cores: bf16 inputs, head dims D
// and Dv in {64, 128}, sm_80 and newer. flash_backward.cuh's split and
// arithmetic (the rowdot kernel is shared; dK/dV per key tile walking the
// group's heads and query tiles in order; dQ per query tile; no atomics), with
// the five products S = Q K^T, dP = dO V^T, dV += P^T dO, dK += dS^T Q and
// dQ += dS K on warp-level 16x16x16 bf16 WMMA with f32 accumulation. P and dS
// are rounded to bf16 for the products that take them, as FlashAttention-2
// does; everything elementwise (scores, masks, softmax, dS) is f32 through
// flash_kernel.cuh's ScoreFn and pair_grad, the SIMT kernels' own code.
//
// Blocks of 64 rows with 4 warps of 16; each warp's products and elementwise
// work touch only its own 16-row band of the score tiles, so within a step
// warps sync with __syncwarp, and only the shared tile loads need __syncthreads.
// The dK, dV and dQ accumulators stay in WMMA fragments (registers) across the
// whole walk: nothing rescales them, unlike the forward's output.
#include "core/cuda/flash_backward.cuh"
#include "core/cuda/flash_forward_mma.cuh"

namespace attnlab::cuda::flash {

// out[16, 16 n_blocks] (f32, row stride ldo) = A[16, 16 k_blocks] (bf16 row-major,
// stride lda) times B^T, where B is row-major [16 n_blocks, 16 k_blocks] with
// stride ldb (so B^T is read as a column-major operand).
__device__ __forceinline__ void band_times_transposed(float* out, int64_t ldo, const bf16* a, int64_t lda,
                                                      const bf16* b, int64_t ldb, int n_blocks, int k_blocks) {
  namespace wmma = nvcuda::wmma;
  for (int n = 0; n < n_blocks; ++n) {
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < k_blocks; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> fb;
      wmma::load_matrix_sync(fa, reinterpret_cast<const __nv_bfloat16*>(a + 16 * kk), static_cast<unsigned>(lda));
      wmma::load_matrix_sync(fb, reinterpret_cast<const __nv_bfloat16*>(b + (16 * n) * ldb + 16 * kk),
                             static_cast<unsigned>(ldb));
      wmma::mma_sync(acc, fa, fb, acc);
    }
    wmma::store_matrix_sync(out + 16 * n, acc, static_cast<unsigned>(ldo), wmma::mem_row_major);
  }
}

// acc[n] += A[16, 64] (bf16 row-major, stride lda) times B[64, 16 n_blocks]
// (bf16 row-major, stride ldb), for every 16-column block n of B.
template <int kBlocks>
__device__ __forceinline__ void band_accumulate(nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> (&acc)[kBlocks],
                                                const bf16* a, int64_t lda, const bf16* b, int64_t ldb) {
  namespace wmma = nvcuda::wmma;
  for (int n = 0; n < kBlocks; ++n)
    for (int kk = 0; kk < kMmaTile / 16; ++kk) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
      wmma::load_matrix_sync(fa, reinterpret_cast<const __nv_bfloat16*>(a + 16 * kk), static_cast<unsigned>(lda));
      wmma::load_matrix_sync(fb, reinterpret_cast<const __nv_bfloat16*>(b + (16 * kk) * ldb + 16 * n),
                             static_cast<unsigned>(ldb));
      wmma::mma_sync(acc[n], fa, fb, acc[n]);
    }
}

// Writes a warp's 16-row band of accumulators through shared memory (`stage`,
// row stride ld, the band's rows) to rows [0, rows) of dst (row stride width),
// times `multiplier`. Lane l writes row l / 2, columns of parity l % 2.
template <int kBlocks>
__device__ __forceinline__ void store_band(bf16* dst, int64_t width, int64_t rows,
                                           nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> (&acc)[kBlocks],
                                           float* stage, int64_t ld, float multiplier) {
  namespace wmma = nvcuda::wmma;
  for (int n = 0; n < kBlocks; ++n)
    wmma::store_matrix_sync(stage + 16 * n, acc[n], static_cast<unsigned>(ld), wmma::mem_row_major);
  __syncwarp();
  const int lane = threadIdx.x % 32, row = lane / 2, half = lane % 2;
  if (row < rows)
    for (int x = 0; x < 8 * kBlocks; ++x) {
      const int c = half + 2 * x;
      dst[row * width + c] = bf16(stage[row * ld + c] * multiplier);
    }
  __syncwarp();  // the band is reused by the caller's next store
}

// dK, dV of key tile `tile` (64 keys) of kv head (b, hk); warp w owns keys 16 w ..
// and, in the elementwise step, lane l key 16 w + l / 2 against the query
// columns of parity l % 2.
template <FlashScore kScore, int kD, int kDv>
__global__ void __launch_bounds__(kMmaThreads)
    flash_dkdv_mma_kernel(const FlashKernelParams p, const BwdInputs<bf16> in, bf16* __restrict__ dk,
                          bf16* __restrict__ dv) {
#if defined(ATTNLAB_FLASH_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  namespace wmma = nvcuda::wmma;
  using C = float;
  constexpr int64_t ldk = mma_ld_bf16(kD), ldv = mma_ld_bf16(kDv), ldt = mma_ld_bf16(kMmaTile);
  constexpr int64_t lds = mma_ld_f32(kMmaTile), ldo = mma_ld_f32(kD > kDv ? kD : kDv);
  bf16* sK = shared_tiles<bf16>();
  bf16* sV = sK + kMmaTile * ldk;
  bf16* sQ = sV + kMmaTile * ldv;
  bf16* sdO = sQ + kMmaTile * ldk;
  float* sST = reinterpret_cast<float*>(sdO + kMmaTile * ldv);  // [key][query]
  float* sdPT = sST + kMmaTile * lds;
  bf16* sPT = reinterpret_cast<bf16*>(sdPT + kMmaTile * lds);
  bf16* sdST = sPT + kMmaTile * ldt;
  float* sLse = reinterpret_cast<float*>(sdST + kMmaTile * ldt);
  float* sDrow = sLse + kMmaTile;
  float* sDh = sDrow + kMmaTile;

  const int64_t q_tiles = (p.Tq + kMmaTile - 1) / kMmaTile, k_tiles = (p.Tk + kMmaTile - 1) / kMmaTile;
  const TileOfBlock tb = tile_of_block(blockIdx.x, k_tiles, false);
  const int64_t bhk = tb.head, b = bhk / p.Hkv, hk = bhk % p.Hkv, kt = tb.tile;
  const int64_t j0 = kt * kMmaTile, nk = p.Tk - j0 < kMmaTile ? p.Tk - j0 : kMmaTile;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t jb = 16 * warp, jr = jb + lane / 2, half = lane % 2, j = j0 + jr;
  const C scale = static_cast<C>(p.scale), sig_bias = static_cast<C>(p.sigmoid_bias);
  const bool softcap = p.softcap > 0, with_entropy = in.dentropy != nullptr;
  load_tile_bf16(sK, ldk, in.k + (bhk * p.Tk + j0) * kD, kD, nk, kD);
  load_tile_bf16(sV, ldv, in.v + (bhk * p.Tk + j0) * kDv, kDv, nk, kDv);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[kD / 16], dv_acc[kDv / 16];
  for (auto& f : dk_acc) wmma::fill_fragment(f, 0.0f);
  for (auto& f : dv_acc) wmma::fill_fragment(f, 0.0f);

  for (int64_t h = hk * p.G; h < (hk + 1) * p.G; ++h) {
    const ScoreFn<C> score = ScoreFn<C>::of(p, h);
    const int64_t bh = b * p.H + h;
    for (int64_t qt = 0; qt < q_tiles; ++qt) {
      const int64_t i0 = qt * kMmaTile, nq = p.Tq - i0 < kMmaTile ? p.Tq - i0 : kMmaTile, row0 = bh * p.Tq + i0;
      const TileKind kind = attnlab::flash::classify(p.mask, p.pos(i0), p.pos(i0 + nq), j0, j0 + nk, p.Tk);
      if (kind == TileKind::skip) continue;  // uniform over the block
      __syncthreads();  // every warp is done with the previous step's q-side tiles (and sK, sV are loaded)
      load_tile_bf16(sQ, ldk, in.q + row0 * kD, kD, nq, kD);
      load_tile_bf16(sdO, ldv, in.dout + row0 * kDv, kDv, nq, kDv);
      for (int64_t e = threadIdx.x; e < kMmaTile; e += kMmaThreads) {
        const bool ok = e < nq && kScore == FlashScore::softmax;
        sLse[e] = ok ? in.lse[row0 + e] : neg_inf<C>();
        sDrow[e] = ok ? in.drow[row0 + e] : C(0);
        sDh[e] = ok && with_entropy ? static_cast<C>(in.dentropy[row0 + e]) : C(0);
      }
      __syncthreads();

      // The warp's keys against all 64 queries: S^T = K q^T (unscaled) and dP^T = V dO^T.
      band_times_transposed(sST + jb * lds, lds, sK + jb * ldk, ldk, sQ, ldk, kMmaTile / 16, kD / 16);
      band_times_transposed(sdPT + jb * lds, lds, sV + jb * ldv, ldv, sdO, ldv, kMmaTile / 16, kDv / 16);
      __syncwarp();
      for (int x = 0; x < kMmaTile / 2; ++x) {
        const int64_t r = half + 2 * x, pos = p.pos(i0 + r);
        C th;
        const C sc = score(scale * sST[jr * lds + r], pos, j, th);
        const bool visible =
            r < nq && jr < nk && (kind == TileKind::full || key_range(p.mask, pos, p.Tk).visible(j));
        const PairGrad<C> g = pair_grad<C, kScore>(sc, visible, sdPT[jr * lds + r], th, softcap, sLse[r], sDrow[r],
                                                   sDh[r], with_entropy, sig_bias);
        sPT[jr * ldt + r] = bf16(g.p);
        sdST[jr * ldt + r] = bf16(g.ds);
      }
      __syncwarp();
      band_accumulate(dv_acc, sPT + jb * ldt, ldt, sdO, ldv);  // dV += P^T dO
      band_accumulate(dk_acc, sdST + jb * ldt, ldt, sQ, ldk);  // dK += dS^T q (scaled at the end)
    }
  }

  __syncthreads();  // every warp is done with the q-side tiles: they stage the output now
  float* stage = reinterpret_cast<float*>(sQ) + jb * ldo;
  const int64_t rows = nk - jb;  // this warp's keys that exist (may be <= 0)
  const int64_t key_row0 = bhk * p.Tk + j0 + jb;
  store_band(dv + key_row0 * kDv, kDv, rows, dv_acc, stage, ldo, 1.0f);
  store_band(dk + key_row0 * kD, kD, rows, dk_acc, stage, ldo, scale);
#endif
}

// dQ of query tile `tile` (64 rows) of head (b, h); warp w owns rows 16 w ..
// and, in the elementwise step, lane l row 16 w + l / 2 against the key
// columns of parity l % 2.
template <FlashScore kScore, int kD, int kDv>
__global__ void __launch_bounds__(kMmaThreads)
    flash_dq_mma_kernel(const FlashKernelParams p, const BwdInputs<bf16> in, bf16* __restrict__ dq) {
#if defined(ATTNLAB_FLASH_EMULATION) || (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800)
  namespace wmma = nvcuda::wmma;
  using C = float;
  constexpr int64_t ldk = mma_ld_bf16(kD), ldv = mma_ld_bf16(kDv), ldt = mma_ld_bf16(kMmaTile);
  constexpr int64_t lds = mma_ld_f32(kMmaTile), ldo = mma_ld_f32(kD);
  bf16* sQ = shared_tiles<bf16>();
  bf16* sdO = sQ + kMmaTile * ldk;
  bf16* sK = sdO + kMmaTile * ldv;
  bf16* sV = sK + kMmaTile * ldk;
  float* sS = reinterpret_cast<float*>(sV + kMmaTile * ldv);
  float* sdP = sS + kMmaTile * lds;
  bf16* sdS = reinterpret_cast<bf16*>(sdP + kMmaTile * lds);

  const int64_t q_tiles = (p.Tq + kMmaTile - 1) / kMmaTile, k_tiles = (p.Tk + kMmaTile - 1) / kMmaTile;
  const TileOfBlock tb = tile_of_block(blockIdx.x, q_tiles, true);
  const int64_t bh = tb.head, b = bh / p.H, h = bh % p.H, hk = h / p.G, qt = tb.tile;
  const int64_t i0 = qt * kMmaTile, nq = p.Tq - i0 < kMmaTile ? p.Tq - i0 : kMmaTile, row0 = bh * p.Tq + i0;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t rb = 16 * warp, r = rb + lane / 2, half = lane % 2;
  const int64_t pos = p.pos(i0 + r);
  const KeyRange kr = key_range(p.mask, pos, p.Tk);
  const ScoreFn<C> score = ScoreFn<C>::of(p, h);
  const C scale = static_cast<C>(p.scale), sig_bias = static_cast<C>(p.sigmoid_bias);
  const bool softcap = p.softcap > 0, with_entropy = in.dentropy != nullptr;
  const bool row_ok = r < nq && kScore == FlashScore::softmax;
  const C lse = row_ok ? in.lse[row0 + r] : neg_inf<C>();
  const C drow = row_ok ? in.drow[row0 + r] : C(0);
  const C dh = row_ok && with_entropy ? static_cast<C>(in.dentropy[row0 + r]) : C(0);
  load_tile_bf16(sQ, ldk, in.q + row0 * kD, kD, nq, kD);
  load_tile_bf16(sdO, ldv, in.dout + row0 * kDv, kDv, nq, kDv);
  const bf16* kh = in.k + (b * p.Hkv + hk) * p.Tk * kD;
  const bf16* vh = in.v + (b * p.Hkv + hk) * p.Tk * kDv;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dq_acc[kD / 16];
  for (auto& f : dq_acc) wmma::fill_fragment(f, 0.0f);

  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    const int64_t j0 = kt * kMmaTile, nk = p.Tk - j0 < kMmaTile ? p.Tk - j0 : kMmaTile;
    const TileKind kind = attnlab::flash::classify(p.mask, p.pos(i0), p.pos(i0 + nq), j0, j0 + nk, p.Tk);
    if (kind == TileKind::skip) continue;  // uniform over the block
    __syncthreads();  // every warp is done with the previous k, v tiles (and sQ, sdO are loaded)
    load_tile_bf16(sK, ldk, kh + j0 * kD, kD, nk, kD);
    load_tile_bf16(sV, ldv, vh + j0 * kDv, kDv, nk, kDv);
    __syncthreads();

    // The warp's rows against all 64 keys: S = q K^T (unscaled) and dP = dO V^T.
    band_times_transposed(sS + rb * lds, lds, sQ + rb * ldk, ldk, sK, ldk, kMmaTile / 16, kD / 16);
    band_times_transposed(sdP + rb * lds, lds, sdO + rb * ldv, ldv, sV, ldv, kMmaTile / 16, kDv / 16);
    __syncwarp();
    for (int x = 0; x < kMmaTile / 2; ++x) {
      const int64_t c = half + 2 * x, jj = j0 + c;
      C th;
      const C sc = score(scale * sS[r * lds + c], pos, jj, th);
      const bool visible = r < nq && c < nk && (kind == TileKind::full || kr.visible(jj));
      sdS[r * ldt + c] =
          bf16(pair_grad<C, kScore>(sc, visible, sdP[r * lds + c], th, softcap, lse, drow, dh, with_entropy, sig_bias)
                   .ds);
    }
    __syncwarp();
    band_accumulate(dq_acc, sdS + rb * ldt, ldt, sK, ldk);  // dQ += dS K (scaled at the end)
  }

  __syncthreads();  // every warp is done with sS, sdP: they stage the output now
  float* stage = sS + rb * ldo;
  store_band(dq + (row0 + rb) * kD, kD, nq - rb, dq_acc, stage, ldo, scale);
#endif
}

}  // namespace attnlab::cuda::flash
