#pragma once
// The launch geometry of the fused CUDA attention (flash_attention.cu,
// flash_attention_backward.cu) and the plain parameter struct its kernels take
// by value. Plain C++ apart from ATTNLAB_HOST_DEVICE, so host tests
// (tests/core/test_cuda_flash_geometry.cpp) check the arithmetic without a GPU.
//
// Every kernel works on [kFlashTile x kFlashTile] blocks of scores with
// kFlashThreads threads: thread t owns tile row t / kFlashLanesPerRow and, of
// that row, the columns c with c % kFlashLanesPerRow == t % kFlashLanesPerRow.
// A row's lanes are neighbours in one warp, so its reductions are shuffles and
// the row of probabilities it shares through shared memory needs only __syncwarp.
#include <cstdint>

#include "core/attention_params.h"
#include "core/error.h"
#include "core/flash_mask.h"
#include "core/macros.h"

namespace attnlab::cuda::flash {

constexpr int kFlashTile = 32;
constexpr int kFlashLanesPerRow = 4;
constexpr int kFlashThreads = kFlashTile * kFlashLanesPerRow;  // 128
constexpr int kFlashTileCols = kFlashTile / kFlashLanesPerRow;  // score columns per thread: 8
// Output columns (of D or Dv) one block accumulates in registers; wider heads
// take several blocks along gridDim.y, each recomputing the scores.
constexpr int64_t kFlashMaxCols = 256;
// ALiBi slopes travel inside the kernel parameters (no per-call host-to-device copy).
constexpr int64_t kFlashMaxAlibiHeads = 128;

// What the kernels need of FlashAttentionParams and the shapes, by value.
struct FlashKernelParams {
  int64_t B, H, Hkv, G, Tq, Tk, D, Dv;
  attnlab::flash::FlashMaskSpec mask;
  int64_t q_offset;
  double scale;         // resolved: never 0
  double softcap;       // 0: off
  double sigmoid_bias;  // sigmoid score only
  bool alibi;
  double slopes[kFlashMaxAlibiHeads];  // slopes[h] for h < H when alibi

  ATTNLAB_HOST_DEVICE int64_t q_tiles() const { return (Tq + kFlashTile - 1) / kFlashTile; }
  ATTNLAB_HOST_DEVICE int64_t k_tiles() const { return (Tk + kFlashTile - 1) / kFlashTile; }
  ATTNLAB_HOST_DEVICE int64_t pos(int64_t i) const { return q_offset + i; }
  // Rows [i0, i0 + nq) of query tile qt; keys [j0, j0 + nk) of key tile kt.
  ATTNLAB_HOST_DEVICE int64_t rows_in(int64_t qt) const {
    const int64_t n = Tq - qt * kFlashTile;
    return n < kFlashTile ? n : kFlashTile;
  }
  ATTNLAB_HOST_DEVICE int64_t keys_in(int64_t kt) const {
    const int64_t n = Tk - kt * kFlashTile;
    return n < kFlashTile ? n : kFlashTile;
  }
  ATTNLAB_HOST_DEVICE attnlab::flash::TileKind block_kind(int64_t qt, int64_t kt) const {
    const int64_t i0 = qt * kFlashTile, j0 = kt * kFlashTile;
    return attnlab::flash::classify(mask, pos(i0), pos(i0 + rows_in(qt)), j0, j0 + keys_in(kt), Tk);
  }
};

// Checks what the kernels cannot take (too many heads for the slope array)
// with one clear error, and fills the struct.
inline FlashKernelParams make_kernel_params(const FlashAttentionParams& p, int64_t B, int64_t H, int64_t Hkv,
                                            int64_t Tq, int64_t Tk, int64_t D, int64_t Dv) {
  FlashKernelParams k{};
  k.B = B, k.H = H, k.Hkv = Hkv, k.G = H / Hkv, k.Tq = Tq, k.Tk = Tk, k.D = D, k.Dv = Dv;
  k.mask = attnlab::flash::mask_spec(p);
  k.q_offset = p.q_offset;
  k.scale = p.resolved_scale(D);
  k.softcap = p.softcap;
  k.sigmoid_bias = p.sigmoid_bias;
  k.alibi = !p.alibi_slopes.empty();
  ATTNLAB_CHECK(!k.alibi || H <= kFlashMaxAlibiHeads, "flash_attention (CUDA): ALiBi supports at most ",
                kFlashMaxAlibiHeads, " query heads, got ", H);
  for (size_t h = 0; h < p.alibi_slopes.size(); ++h) k.slopes[h] = p.alibi_slopes[h];
  return k;
}

// A one-dimensional grid over (head, tile) pairs: gridDim.x allows 2^31 - 1
// blocks where y and z stop at 65535. Under a causal mask the last query tile
// and the first key tile have the most work; `last_first` puts a head's last
// tile first, so the long blocks start early and the tail of the launch evens out.
struct TileOfBlock {
  int64_t head;  // b * H + h (or b * Hkv + hk)
  int64_t tile;
};
ATTNLAB_HOST_DEVICE TileOfBlock tile_of_block(int64_t block, int64_t tiles, bool last_first) {
  const int64_t t = block % tiles;
  return {block / tiles, last_first ? tiles - 1 - t : t};
}
constexpr int64_t kMaxGridX = 2147483647;

// Output columns per thread, rounded up to a compiled bucket (8, 16, 32, 64):
// a block accumulates min(width, kFlashMaxCols) columns, kFlashLanesPerRow
// threads share a row.
inline int cols_per_thread(int64_t width) {
  const int64_t w = width < kFlashMaxCols ? width : kFlashMaxCols;
  const int64_t need = (w + kFlashLanesPerRow - 1) / kFlashLanesPerRow;
  int b = 8;
  while (b < need) b *= 2;
  return b;
}
// Blocks along y that split `width` output columns into chunks of kFlashMaxCols.
inline int64_t col_chunks(int64_t width) { return (width + kFlashMaxCols - 1) / kFlashMaxCols; }

// Shared memory of each kernel, in elements of the compute type. Rows of
// length n are stored with stride n + 1 (odd for any n divisible by 32, so a
// warp walking one column does not hit one bank 8 times).
ATTNLAB_HOST_DEVICE int64_t padded(int64_t n) { return n + 1; }
inline int64_t forward_smem_elems(int64_t D, int64_t Dv) {
  // q and k tiles, this block's columns of the v tile, and the probabilities
  const int64_t v_cols = Dv < kFlashMaxCols ? Dv : kFlashMaxCols;
  return kFlashTile * (2 * padded(D) + padded(v_cols) + padded(kFlashTile));
}
inline int64_t backward_dkdv_smem_elems(int64_t D, int64_t Dv) {
  // k, v, q, dO tiles, P and dS (key-major), and lse, D_i, dH of the query rows
  return kFlashTile * (2 * padded(D) + 2 * padded(Dv) + 2 * padded(kFlashTile) + 3);
}
inline int64_t backward_dq_smem_elems(int64_t D, int64_t Dv) {
  // q, dO, k, v tiles and dS (query-major)
  return kFlashTile * (2 * padded(D) + 2 * padded(Dv) + padded(kFlashTile));
}

// ---- the tensor-core forward (flash_forward_mma.cuh): bf16, D and Dv in {64, 128} ----
constexpr int kMmaTile = 64;  // query rows and keys per block tile
constexpr int kMmaWarps = 4;  // 16 query rows each
constexpr int kMmaThreads = 32 * kMmaWarps;
// Row strides of its shared tiles: multiples of 8 bf16 (16 bytes) and of 4
// floats, as WMMA loads and stores need, keeping each 16-row band 32-byte aligned.
constexpr int64_t mma_ld_bf16(int64_t n) { return n + 8; }
constexpr int64_t mma_ld_f32(int64_t n) { return n + 4; }

// Its shared-memory bytes for head dims d, dv: q, k, v and P tiles in bf16,
// scores and the output accumulator in f32.
constexpr int64_t mma_forward_smem_bytes(int64_t d, int64_t dv) {
  return kMmaTile * (2 * (2 * mma_ld_bf16(d) + mma_ld_bf16(dv) + mma_ld_bf16(kMmaTile)) +
                     4 * (mma_ld_f32(kMmaTile) + mma_ld_f32(dv)));
}

// Shared-memory bytes of the tensor-core backward (flash_backward_mma.cuh).
constexpr int64_t mma_dkdv_smem_bytes(int64_t d, int64_t dv) {
  // k, v, q, dO tiles; S^T, dP^T (f32); P^T, dS^T (bf16); lse, D_i, dH of the query rows
  return kMmaTile * (2 * (2 * mma_ld_bf16(d) + 2 * mma_ld_bf16(dv) + 2 * mma_ld_bf16(kMmaTile)) +
                     4 * 2 * mma_ld_f32(kMmaTile) + 4 * 3);
}
constexpr int64_t mma_dq_smem_bytes(int64_t d, int64_t dv) {
  // q, dO, k, v tiles; S, dP (f32); dS (bf16)
  return kMmaTile * (2 * (2 * mma_ld_bf16(d) + 2 * mma_ld_bf16(dv) + mma_ld_bf16(kMmaTile)) +
                     4 * 2 * mma_ld_f32(kMmaTile));
}

// Whether the tensor-core kernels cover these head dims.
inline bool mma_forward_covers(int64_t d, int64_t dv) { return (d == 64 || d == 128) && (dv == 64 || dv == 128); }

}  // namespace attnlab::cuda::flash
