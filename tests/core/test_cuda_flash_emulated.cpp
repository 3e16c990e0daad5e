// The fused attention's CUDA kernels (core/cuda/flash_forward.cuh,
// flash_backward.cuh and the tensor-core flash_forward_mma.cuh,
// flash_backward_mma.cuh), their own source, run on the host by
// tests/core/flash_emulator.h and compared with the CPU kernel: out, lse,
// entropy, sink mass and all three gradients, for every mask, ALiBi, softcap,
// sigmoid score, grouped heads, Dv != D, Tq != Tk with q_offset, the entropy's
// gradient, wide heads split over blocks, and rows that see no key. No GPU
// needed, in every build. It checks the kernels' arithmetic and indexing, not
// the launchers in the .cu files (mirrored below) nor timing-dependent races;
// tests/core/test_cuda_attention.cpp runs the real thing where a device exists.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/attention_params.h"
#include "core/cpu/cpu_ops.h"
#include "core/flash_testing.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "test_helpers.h"
// After every other header: it defines the CUDA keywords as macros.
#include "core/flash_emulator.h"
#include "core/cuda/flash_backward.cuh"
#include "core/cuda/flash_backward_mma.cuh"
#include "core/cuda/flash_forward.cuh"
#include "core/cuda/flash_forward_mma.cuh"

using namespace attnlab;
using namespace attnlab::cuda::flash;
using namespace attnlab::flash_testing;
using attnlab::cuda::compute_t;
using attnlab::testing::randn;

namespace {

template <class F>
void with_cols(int64_t width, F&& f) {  // flash_launch.h's dispatch_cols, which needs the CUDA runtime
  switch (cols_per_thread(width)) {
    case 8: return f.template operator()<8>();
    case 16: return f.template operator()<16>();
    case 32: return f.template operator()<32>();
    default: return f.template operator()<64>();
  }
}

// flash_attention.cu's and flash_attention_backward.cu's launchers, on the
// emulator; `mma`: the tensor-core kernels (bf16, head dims 64 or 128).
template <class T, FlashScore kScore>
Results emulate(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g, const Tensor& dh,
                const FlashAttentionParams& params, bool mma) {
  using C = compute_t<T>;
  const FlashKernelParams p =
      make_kernel_params(params, q.size(0), q.size(1), k.size(1), q.size(2), k.size(2), q.size(3), v.size(3));
  const DType dt = dtype_v<T>, ct = dtype_v<C>;
  Results r;
  r.out = Tensor::empty({p.B, p.H, p.Tq, p.Dv}, dt);
  if (kScore == FlashScore::softmax) r.lse = Tensor::empty({p.B, p.H, p.Tq}, ct);
  if (params.entropy) r.entropy = Tensor::empty({p.B, p.H, p.Tq}, dt);
  if (params.sink_mass) r.sink_mass = Tensor::empty({p.B, p.H, p.Tq}, dt);
  const T *pq = q.data<T>(), *pk = k.data<T>(), *pv = v.data<T>(), *pg = g.data<T>();
  T* po = r.out.data<T>();
  C* pl = r.lse.defined() ? r.lse.data<C>() : nullptr;
  T* pe = r.entropy.defined() ? r.entropy.data<T>() : nullptr;
  T* ps = r.sink_mass.defined() ? r.sink_mass.data<T>() : nullptr;
  const emu::Dim3 fwd_grid{static_cast<unsigned>(p.B * p.H * p.q_tiles()), static_cast<unsigned>(col_chunks(p.Dv)), 1};
  if constexpr (std::is_same_v<T, bf16>) {
    if (mma) {
      EXPECT_TRUE(mma_forward_covers(p.D, p.Dv));
      const emu::Dim3 grid{static_cast<unsigned>(p.B * p.H * ((p.Tq + kMmaTile - 1) / kMmaTile)), 1, 1};
      auto launch = [&]<int kD, int kDv>() {
        emu::launch(grid, kMmaThreads, static_cast<size_t>(mma_forward_smem_bytes(kD, kDv)),
                    [=] { flash_forward_mma_kernel<kScore, kD, kDv>(p, pq, pk, pv, po, pl, pe, ps); });
      };
      if (p.D == 64 && p.Dv == 64) launch.template operator()<64, 64>();
      else if (p.D == 64) launch.template operator()<64, 128>();
      else if (p.Dv == 64) launch.template operator()<128, 64>();
      else launch.template operator()<128, 128>();
    }
  }
  if (!mma) {
    with_cols(p.Dv, [&]<int kCols>() {
      emu::launch(fwd_grid, kFlashThreads, static_cast<size_t>(forward_smem_elems(p.D, p.Dv)) * sizeof(C),
                  [=] { flash_forward_kernel<T, kScore, kCols>(p, pq, pk, pv, po, pl, pe, ps); });
    });
  }

  r.dq = Tensor::empty(q.shape(), dt);
  r.dk = Tensor::empty(k.shape(), dt);
  r.dv = Tensor::empty(v.shape(), dt);
  const bool with_entropy = kScore == FlashScore::softmax && dh.defined();
  Tensor drow;
  if (kScore == FlashScore::softmax) {
    const int64_t rows = p.B * p.H * p.Tq;
    drow = Tensor::empty({rows}, ct);
    C* pd = drow.data<C>();
    const T* ph = with_entropy ? r.entropy.data<T>() : nullptr;
    const T* pdh = with_entropy ? dh.data<T>() : nullptr;
    const unsigned blocks = static_cast<unsigned>((rows + kRowdotThreads / 32 - 1) / (kRowdotThreads / 32));
    emu::launch({blocks, 1, 1}, kRowdotThreads, 0,
                [=] { flash_rowdot_kernel<T>(po, pg, ph, pdh, rows, p.Dv, pd); });
  }
  const BwdInputs<T> in{pq, pk, pv, pg, pl, drow.defined() ? drow.data<C>() : nullptr,
                        with_entropy ? dh.data<T>() : nullptr};
  T *pdq = r.dq.data<T>(), *pdk = r.dk.data<T>(), *pdv = r.dv.data<T>();
  if constexpr (std::is_same_v<T, bf16>) {
    if (mma) {
      auto launch = [&]<int kD, int kDv>() {
        emu::launch({static_cast<unsigned>(p.B * p.Hkv * ((p.Tk + kMmaTile - 1) / kMmaTile)), 1, 1}, kMmaThreads,
                    static_cast<size_t>(mma_dkdv_smem_bytes(kD, kDv)),
                    [=] { flash_dkdv_mma_kernel<kScore, kD, kDv>(p, in, pdk, pdv); });
        emu::launch({static_cast<unsigned>(p.B * p.H * ((p.Tq + kMmaTile - 1) / kMmaTile)), 1, 1}, kMmaThreads,
                    static_cast<size_t>(mma_dq_smem_bytes(kD, kDv)),
                    [=] { flash_dq_mma_kernel<kScore, kD, kDv>(p, in, pdq); });
      };
      if (p.D == 64 && p.Dv == 64) launch.template operator()<64, 64>();
      else if (p.D == 64) launch.template operator()<64, 128>();
      else if (p.Dv == 64) launch.template operator()<128, 64>();
      else launch.template operator()<128, 128>();
      return r;
    }
  }
  const int64_t wide = p.D > p.Dv ? p.D : p.Dv;
  with_cols(wide, [&]<int kCols>() {
    emu::launch({static_cast<unsigned>(p.B * p.Hkv * p.k_tiles()), static_cast<unsigned>(col_chunks(wide)), 1},
                kFlashThreads, static_cast<size_t>(backward_dkdv_smem_elems(p.D, p.Dv)) * sizeof(C),
                [=] { flash_dkdv_kernel<T, kScore, kCols>(p, in, pdk, pdv); });
  });
  with_cols(p.D, [&]<int kCols>() {
    emu::launch({static_cast<unsigned>(p.B * p.H * p.q_tiles()), static_cast<unsigned>(col_chunks(p.D)), 1},
                kFlashThreads, static_cast<size_t>(backward_dq_smem_elems(p.D, p.Dv)) * sizeof(C),
                [=] { flash_dq_kernel<T, kScore, kCols>(p, in, pdq); });
  });
  return r;
}

// The emulated kernels in dtype `dt` against the CPU kernel (in f32 for bf16,
// on the same rounded inputs).
void expect_matches_cpu(const Shapes& s, const FlashAttentionParams& p, DType dt, uint64_t seed, bool with_dh,
                        bool mma = false) {
  SCOPED_TRACE(detail::cat(mma ? "tensor cores " : "", describe(s, p, dt), with_dh ? " +dentropy" : ""));
  const DType ref_dt = dt == DType::bf16 ? DType::f32 : dt;
  auto make = [&](const Shape& shape, uint64_t sd) { return randn(shape, sd).to(dt); };
  const Tensor q = make({s.B, s.H, s.Tq, s.D}, seed), k = make({s.B, s.Hkv, s.Tk, s.D}, seed + 1),
               v = make({s.B, s.Hkv, s.Tk, s.Dv}, seed + 2), g = make({s.B, s.H, s.Tq, s.Dv}, seed + 3),
               dh = with_dh ? make({s.B, s.H, s.Tq}, seed + 4) : Tensor();
  Results got;
  auto emulate_as = [&]<class T>() {
    got = p.score == FlashScore::softmax ? emulate<T, FlashScore::softmax>(q, k, v, g, dh, p, mma)
                                         : emulate<T, FlashScore::sigmoid>(q, k, v, g, dh, p, mma);
  };
  if (dt == DType::f64) emulate_as.template operator()<double>();
  else if (dt == DType::f32) emulate_as.template operator()<float>();
  else emulate_as.template operator()<bf16>();

  const Results want =
      run(q.to(ref_dt), k.to(ref_dt), v.to(ref_dt), g.to(ref_dt), with_dh ? dh.to(ref_dt) : Tensor(), p);
  const double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 2e-5 : 3e-2;
  expect_results_close(got, want, p, dt, tol, tol);
}

// GQA (2 query heads per kv head), Dv != D, Tq != Tk with an offset, tiles of
// 32 with partial ones at both ends.
const Shapes kGrouped{1, 4, 2, 40, 45, 5, 7, 5};

}  // namespace

TEST(CudaFlashEmulated, SoftmaxWithEntropyMatchesCpuForEveryMask) {
  uint64_t seed = 10;
  for (FlashMask mask : kMasks)
    for (bool biased : {false, true}) {
      FlashAttentionParams p = params(mask, biased, biased, FlashScore::softmax, kGrouped.H, kGrouped.q_offset);
      p.entropy = p.sink_mass = true;
      expect_matches_cpu(kGrouped, p, DType::f64, seed += 8, true);
    }
}

TEST(CudaFlashEmulated, PlainSoftmaxAndSigmoidMatchCpu) {
  uint64_t seed = 200;
  for (FlashMask mask : {FlashMask::causal, FlashMask::sinks})
    for (FlashScore score : {FlashScore::softmax, FlashScore::sigmoid})
      expect_matches_cpu(kGrouped, params(mask, true, true, score, kGrouped.H, kGrouped.q_offset), DType::f64,
                         seed += 8, false);
  expect_matches_cpu(kGrouped, params(FlashMask::window, false, false, FlashScore::sigmoid, kGrouped.H, 5), DType::f32,
                     300, false);
}

// Decode: 3 queries after 67 cached keys; a window that skips whole key tiles.
TEST(CudaFlashEmulated, DecodeWithSkippedTilesMatchesCpu) {
  FlashAttentionParams p = params(FlashMask::sinks, true, true, FlashScore::softmax, 2, 67);
  p.window = 20;
  p.entropy = p.sink_mass = true;
  expect_matches_cpu({1, 2, 1, 3, 70, 8, 8, 67}, p, DType::f64, 400, true);
}

// Heads wider than one block's 256 columns: out, dK, dV, dQ over 2 blocks along y.
TEST(CudaFlashEmulated, WideHeadsSplitOverBlocksMatchCpu) {
  FlashAttentionParams p = params(FlashMask::causal, true, true, FlashScore::softmax, 1, 0);
  p.entropy = true;
  expect_matches_cpu({1, 1, 1, 5, 6, 260, 300, 0}, p, DType::f64, 500, true);
}

TEST(CudaFlashEmulated, Bf16MatchesCpuLoosely) {
  FlashAttentionParams p = params(FlashMask::sinks, true, true, FlashScore::softmax, kGrouped.H, kGrouped.q_offset);
  p.entropy = p.sink_mass = true;
  expect_matches_cpu(kGrouped, p, DType::bf16, 600, true);
}

// Rows whose window holds no key: out 0, lse -inf, zero gradients.
TEST(CudaFlashEmulated, RowsWithoutKeysMatchCpu) {
  FlashAttentionParams p = params(FlashMask::window, false, false, FlashScore::softmax, 1, 6);
  p.window = 3;  // positions 6, 7: windows (3, 6] and (4, 7]; keys 0..4
  p.entropy = p.sink_mass = true;
  expect_matches_cpu({1, 1, 1, 2, 5, 3, 3, 6}, p, DType::f64, 700, true);
}

// The tensor-core forward and backward (bf16, D and Dv in {64, 128}), as
// flash_attention.cu and flash_attention_backward.cu run them on sm_80+:
// every mask, ALiBi + softcap, entropy (+ gradient) and sink mass, GQA, two
// query tiles of 64 with a partial one, Tq != Tk with an offset.
TEST(CudaFlashEmulated, TensorCoreKernelsMatchCpuForEveryMask) {
  uint64_t seed = 800;
  for (FlashMask mask : kMasks)
    for (bool biased : {false, true}) {
      FlashAttentionParams p = params(mask, biased, biased, FlashScore::softmax, 2, 4);
      p.entropy = p.sink_mass = true;
      expect_matches_cpu({1, 2, 1, 70, 74, 64, 64, 4}, p, DType::bf16, seed += 8, true, true);
    }
}

TEST(CudaFlashEmulated, TensorCoreKernelsCoverEveryHeadDimPairAndSigmoid) {
  uint64_t seed = 900;
  const Shapes shapes[] = {{1, 2, 2, 9, 133, 128, 64, 124}, {1, 1, 1, 40, 40, 64, 128, 0}, {1, 1, 1, 17, 20, 128, 128, 3}};
  for (const Shapes& s : shapes) {
    FlashAttentionParams p = params(FlashMask::sinks, true, true, FlashScore::softmax, s.H, s.q_offset);
    p.entropy = p.sink_mass = true;
    expect_matches_cpu(s, p, DType::bf16, seed += 8, true, true);
    expect_matches_cpu(s, params(FlashMask::causal, true, true, FlashScore::sigmoid, s.H, s.q_offset), DType::bf16,
                       seed += 8, false, true);
  }
  // Rows whose window holds no key (every key tile skipped): out 0, lse -inf.
  FlashAttentionParams p = params(FlashMask::window, false, false, FlashScore::softmax, 1, 6);
  p.window = 3;
  p.entropy = p.sink_mass = true;
  expect_matches_cpu({1, 1, 1, 2, 5, 64, 64, 6}, p, DType::bf16, seed += 8, true, true);
  p.q_offset = 70;
  expect_matches_cpu({1, 1, 1, 2, 5, 64, 64, 70}, p, DType::bf16, seed += 8, true, true);
}
