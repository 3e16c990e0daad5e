// The host-side arithmetic of the fused CUDA attention, checked on the CPU (no
// GPU needed, in every build): the mask geometry both backends share
// (core/flash_mask.h) against the mask definitions, the tile skipping the
// kernels do with it, the one-dimensional grid's block -> (head, tile) map, the
// split of output columns among lanes and blocks, the shared-memory budget,
// and the kernel parameters (core/cuda/flash_geometry.h).
#include <gtest/gtest.h>

#include <set>
#include <utility>
#include <vector>

#include "core/cuda/flash_geometry.h"
#include "core/flash_mask.h"
#include "core/flash_testing.h"
#include "test_helpers.h"

using namespace attnlab;
using namespace attnlab::cuda::flash;
using attnlab::flash::classify;
using attnlab::flash::key_range;
using attnlab::flash::mask_spec;
using attnlab::flash::TileKind;
using attnlab::flash_testing::hidden;
using attnlab::flash_testing::kMasks;
using attnlab::testing::throws_error;

namespace {

FlashAttentionParams mask_params(FlashMask mask, int64_t window, int64_t sinks) {
  FlashAttentionParams p;
  p.mask = mask;
  p.window = window;
  p.sinks = sinks;
  return p;
}

}  // namespace

TEST(CudaFlashGeometry, KeyRangeIsTheMaskDefinition) {
  for (FlashMask mask : kMasks)
    for (int64_t window : {1, 3, 8})
      for (int64_t sinks : {0, 2, 5}) {
        FlashAttentionParams p = mask_params(mask, window, sinks);
        for (int64_t Tk : {0, 1, 7, 20})
          for (int64_t pos = 0; pos < 30; ++pos) {
            attnlab::flash::KeyRange kr = key_range(mask_spec(p), pos, Tk);
            for (int64_t j = 0; j < Tk; ++j)
              EXPECT_EQ(kr.visible(j), !hidden(p, pos, j)) << p.str() << " Tk " << Tk << " pos " << pos << " j " << j;
          }
      }
}

// The kernels skip a tile classify calls `skip` and drop the per-element mask
// on `full` ones: both must be exact, for tiles of any size and position.
TEST(CudaFlashGeometry, ClassifyNeverSkipsAVisibleKeyNorFillsAHiddenOne) {
  for (FlashMask mask : kMasks)
    for (int64_t window : {1, 4, 11})
      for (int64_t sinks : {0, 3}) {
        FlashAttentionParams p = mask_params(mask, window, sinks);
        const int64_t Tk = 23;
        for (int64_t pos0 = 0; pos0 < 30; pos0 += 3)
          for (int64_t nq : {1, 4, 7})
            for (int64_t j0 = 0; j0 < Tk; j0 += 2)
              for (int64_t nk : {1, 5, 8}) {
                const int64_t j1 = j0 + nk < Tk ? j0 + nk : Tk;
                TileKind kind = classify(mask_spec(p), pos0, pos0 + nq, j0, j1, Tk);
                int64_t seen = 0, total = 0;
                for (int64_t pos = pos0; pos < pos0 + nq; ++pos)
                  for (int64_t j = j0; j < j1; ++j) {
                    seen += !hidden(p, pos, j);
                    ++total;
                  }
                SCOPED_TRACE(::testing::Message() << p.str() << " rows " << pos0 << "+" << nq << " keys " << j0
                                                  << ".." << j1);
                if (kind == TileKind::skip) {
                  EXPECT_EQ(seen, 0);
                }
                if (kind == TileKind::full) {
                  EXPECT_EQ(seen, total);
                }
                // The host overload (the CPU kernel's) is the same function.
                EXPECT_EQ(kind, classify(p, pos0, pos0 + nq, j0, j1, Tk));
              }
      }
}

// The CUDA tiling (rows_in, keys_in, block_kind) visits every visible pair of a
// decode-shaped problem exactly once and skips only hidden ones.
TEST(CudaFlashGeometry, KernelTilesCoverEveryVisiblePair) {
  for (FlashMask mask : kMasks) {
    FlashAttentionParams fp = mask_params(mask, 40, 3);
    fp.q_offset = 61;
    const int64_t Tq = 70, Tk = 131;
    FlashKernelParams p = make_kernel_params(fp, 1, 2, 1, Tq, Tk, 8, 8);
    int64_t rows = 0;
    for (int64_t qt = 0; qt < p.q_tiles(); ++qt) rows += p.rows_in(qt);
    EXPECT_EQ(rows, Tq);
    int64_t visited = 0, visible = 0;
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j) visible += !hidden(fp, fp.q_offset + i, j);
    for (int64_t qt = 0; qt < p.q_tiles(); ++qt)
      for (int64_t kt = 0; kt < p.k_tiles(); ++kt) {
        TileKind kind = p.block_kind(qt, kt);
        for (int64_t r = 0; r < kFlashTile; ++r)
          for (int64_t c = 0; c < kFlashTile; ++c) {
            const int64_t i = qt * kFlashTile + r, j = kt * kFlashTile + c;
            const bool in_range = r < p.rows_in(qt) && c < p.keys_in(kt);
            const bool sees = in_range && !hidden(fp, p.pos(i), j);
            if (kind == TileKind::skip) {
              EXPECT_FALSE(sees) << fp.str() << " i " << i << " j " << j;
            }
            if (kind == TileKind::full && in_range) {
              EXPECT_TRUE(sees) << fp.str() << " i " << i << " j " << j;
            }
            visited += kind != TileKind::skip && sees;
          }
      }
    EXPECT_EQ(visited, visible) << fp.str();
  }
}

TEST(CudaFlashGeometry, EveryBlockIsOneHeadAndTile) {
  for (bool last_first : {false, true})
    for (int64_t tiles : {1, 3, 7}) {
      const int64_t heads = 5;
      std::set<std::pair<int64_t, int64_t>> seen;
      for (int64_t block = 0; block < heads * tiles; ++block) {
        TileOfBlock t = tile_of_block(block, tiles, last_first);
        ASSERT_GE(t.head, 0);
        ASSERT_LT(t.head, heads);
        ASSERT_GE(t.tile, 0);
        ASSERT_LT(t.tile, tiles);
        seen.insert({t.head, t.tile});
        if (block % tiles == 0) {
          EXPECT_EQ(t.tile, last_first ? tiles - 1 : 0);
        }
      }
      EXPECT_EQ(static_cast<int64_t>(seen.size()), heads * tiles);
    }
  // Past 65535 heads (the y/z limit) the grid still names each one.
  TileOfBlock t = tile_of_block(int64_t{70000} * 3 + 2, 3, true);
  EXPECT_EQ(t.head, 70000);
  EXPECT_EQ(t.tile, 0);
}

// Output column col of a head of width w belongs to block y = col / 256 and,
// in it, to lane col % 4, register x = (col % 256) / 4 < cols_per_thread(w):
// each column exactly once, and no register index past the compiled bucket.
TEST(CudaFlashGeometry, OutputColumnsSplitAmongLanesAndBlocks) {
  for (int64_t w : {1, 5, 7, 8, 32, 33, 64, 100, 128, 129, 256, 257, 300, 513}) {
    const int cols = cols_per_thread(w);
    EXPECT_TRUE(cols == 8 || cols == 16 || cols == 32 || cols == 64) << w;
    std::vector<int> owners(static_cast<size_t>(w), 0);
    for (int64_t y = 0; y < col_chunks(w); ++y) {
      const int64_t c0 = y * kFlashMaxCols, width = w - c0 < kFlashMaxCols ? w - c0 : kFlashMaxCols;
      ASSERT_GT(width, 0) << w;
      for (int lane = 0; lane < kFlashLanesPerRow; ++lane)
        for (int x = 0; x < cols; ++x) {
          const int64_t col = lane + kFlashLanesPerRow * x;
          if (col < width) ++owners[static_cast<size_t>(c0 + col)];
        }
    }
    for (int64_t c = 0; c < w; ++c) EXPECT_EQ(owners[static_cast<size_t>(c)], 1) << "width " << w << " col " << c;
    const int64_t block_cols = w < kFlashMaxCols ? w : kFlashMaxCols;
    EXPECT_GE(cols * kFlashLanesPerRow, block_cols) << w;                      // enough registers
    EXPECT_TRUE(cols == 8 || (cols / 2) * kFlashLanesPerRow < block_cols) << w;  // the smallest bucket that is
  }
}

// The shared memory of the common head dims fits the smallest opt-in limit the
// CI architectures have (sm_80: 163 KB) in f32 and f64; in bf16 the kernels
// use f32 tiles, so f32 is the bound.
TEST(CudaFlashGeometry, SharedMemoryOfCommonHeadsFitsSm80) {
  const int64_t sm80 = 163 * 1024;
  for (int64_t d : {8, 64, 128}) {
    for (int64_t elem : {4, 8}) {
      EXPECT_LE(forward_smem_elems(d, d) * elem, sm80) << d;
      EXPECT_LE(backward_dkdv_smem_elems(d, d) * elem, sm80) << d;
      EXPECT_LE(backward_dq_smem_elems(d, d) * elem, sm80) << d;
    }
  }
  EXPECT_LE(backward_dkdv_smem_elems(256, 256) * 4, sm80);
  // The tensor-core forward (bf16 tiles, f32 scores and output) at its largest.
  EXPECT_LE(mma_forward_smem_bytes(128, 128), sm80);
  EXPECT_LE(mma_dkdv_smem_bytes(128, 128), sm80);
  EXPECT_LE(mma_dq_smem_bytes(128, 128), sm80);
  EXPECT_TRUE(mma_forward_covers(64, 128));
  EXPECT_FALSE(mma_forward_covers(96, 128));
  // The forward keeps only its block's columns of v.
  EXPECT_EQ(forward_smem_elems(8, 1000), forward_smem_elems(8, kFlashMaxCols));
}

TEST(CudaFlashGeometry, KernelParamsCarryTheSettings) {
  FlashAttentionParams fp;
  fp.mask = FlashMask::sinks;
  fp.window = 9;
  fp.sinks = 2;
  fp.q_offset = 4;
  fp.softcap = 2.5;
  fp.alibi_slopes = {0.5, 0.25, 0.125, 0.0625};
  FlashKernelParams p = make_kernel_params(fp, 2, 4, 2, 10, 14, 16, 8);
  EXPECT_EQ(p.G, 2);
  EXPECT_DOUBLE_EQ(p.scale, 0.25);  // 1 / sqrt(16)
  EXPECT_TRUE(p.alibi);
  EXPECT_EQ(p.slopes[3], 0.0625);
  EXPECT_EQ(p.mask.window, 9);
  EXPECT_EQ(p.mask.sinks, 2);
  EXPECT_EQ(p.pos(0), 4);
  EXPECT_EQ(p.k_tiles(), 1);
  fp.alibi_slopes.assign(static_cast<size_t>(kFlashMaxAlibiHeads + 1), 0.5);
  EXPECT_TRUE(throws_error(
      [&] { make_kernel_params(fp, 1, kFlashMaxAlibiHeads + 1, 1, 4, 4, 8, 8); },
      {"flash_attention (CUDA)", "ALiBi", "at most 128", "129"}));
  fp.alibi_slopes.clear();  // without ALiBi any head count goes
  EXPECT_FALSE(make_kernel_params(fp, 1, 100000, 1, 4, 4, 8, 8).alibi);
}
