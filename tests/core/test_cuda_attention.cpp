// The fused CUDA attention (core/cuda/flash_attention*.cu) against the CPU
// kernel through ops::flash_attention / ops::flash_attention_backward: out, lse,
// entropy, sink mass and all three gradients, for every mask (T not a multiple
// of the 32-row tile, Tq != Tk with q_offset), ALiBi, softcap, sigmoid score,
// grouped heads, Dv != D, the entropy's gradient (dentropy), wide heads split
// over blocks, the bf16 tensor-core kernels (head dims 64, 128), rows that see
// no key, more than 65535 heads, and run-to-run determinism. f64 tight, f32 ~1e-5 of each tensor's scale, bf16 (the GPU on
// bf16 inputs against the CPU in f32 on the same rounded values) loose.
// Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/cuda_testing.h"
#include "core/flash_testing.h"
#include "core/ops.h"
#include "test_helpers.h"

using namespace attnlab;
using namespace attnlab::cuda_testing;
using namespace attnlab::flash_testing;
using attnlab::testing::randn;
using attnlab::testing::throws_error;

namespace {

double rtol_for(DType t) { return t == DType::f64 ? 1e-12 : t == DType::f32 ? 2e-5 : 3e-2; }

struct Inputs {
  Tensor q, k, v, g, dh;  // f64 on the CPU; dh undefined unless the loss reads the entropy
};

Inputs inputs(const Shapes& s, uint64_t seed, bool with_dh) {
  return {randn({s.B, s.H, s.Tq, s.D}, seed), randn({s.B, s.Hkv, s.Tk, s.D}, seed + 1),
          randn({s.B, s.Hkv, s.Tk, s.Dv}, seed + 2), randn({s.B, s.H, s.Tq, s.Dv}, seed + 3),
          with_dh ? randn({s.B, s.H, s.Tq}, seed + 4) : Tensor()};
}

// f32/f64: the same dtype on both sides; bf16: the GPU on bf16 inputs, the CPU
// in f32 on the same rounded values.
Inputs convert(const Inputs& in, DType dt, bool gpu) {
  auto one = [&](const Tensor& t) {
    if (!t.defined()) return t;
    Tensor c = t.to(dt);
    if (dt == DType::bf16 && !gpu) c = c.to(DType::f32);
    return gpu ? c.to(kGpu) : c;
  };
  return {one(in.q), one(in.k), one(in.v), one(in.g), one(in.dh)};
}

void expect_matches_cpu(const Shapes& s, const FlashAttentionParams& p, DType dt, uint64_t seed, bool with_dh = false) {
  SCOPED_TRACE(describe(s, p, dt));
  const Inputs in = inputs(s, seed, with_dh);
  const Inputs c = convert(in, dt, false), g = convert(in, dt, true);
  const Results want = run(c.q, c.k, c.v, c.g, c.dh, p), got = run(g.q, g.k, g.v, g.g, g.dh, p);
  ASSERT_TRUE(got.out.device().is_cuda());
  EXPECT_EQ(got.out.dtype(), dt);
  // The entropy's gradient adds terms of both signs: a little more room in f32.
  const double tol = rtol_for(dt), grad_tol = with_dh && dt == DType::f32 ? 5 * tol : tol;
  if (p.score == FlashScore::softmax) {
    EXPECT_EQ(got.lse.dtype(), dt == DType::bf16 ? DType::f32 : dt);
  }
  expect_results_close(got, want, p, dt, tol, grad_tol);
}

const Shapes kShapes[] = {
    {2, 4, 2, 70, 70, 5, 7, 0},      // GQA, T = 2 * 32 + 6: full and partial tiles, Dv != D
    {1, 3, 1, 9, 133, 13, 13, 124},  // MQA decode: 9 new queries after 124 cached keys
    {2, 2, 1, 67, 131, 6, 4, 30},    // Tq != Tk, queries in the middle of the keys
};

}  // namespace

TEST(CudaFlashAttention, MatchesCpuForEveryMaskBiasAndScore) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 100;
  for (DType dt : {DType::f64, DType::f32})
    for (FlashScore score : {FlashScore::softmax, FlashScore::sigmoid})
      for (FlashMask mask : kMasks)
        for (bool alibi : {false, true})
          for (bool softcap : {false, true})
            for (const Shapes& s : kShapes)
              expect_matches_cpu(s, params(mask, alibi, softcap, score, s.H, s.q_offset), dt, seed += 8);
}

// Windows that skip whole key tiles and sinks that keep the first tile partly
// visible, on longer sequences; a non-default scale.
TEST(CudaFlashAttention, MatchesCpuAcrossSkippedTiles) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f64, DType::f32})
    for (FlashMask mask : kMasks) {
      FlashAttentionParams p = params(mask, true, false, FlashScore::softmax, 2, 0);
      p.window = 40;
      p.scale = 0.3;
      expect_matches_cpu({1, 2, 1, 200, 200, 16, 9, 0}, p, dt, 7);
      p.q_offset = 194;
      expect_matches_cpu({1, 2, 2, 3, 197, 16, 9, 194}, p, dt, 8);
    }
}

TEST(CudaFlashAttention, Bf16MatchesCpuLoosely) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 500;
  for (FlashScore score : {FlashScore::softmax, FlashScore::sigmoid})
    for (FlashMask mask : kMasks)
      for (bool biased : {false, true})
        for (const Shapes& s : kShapes)
          expect_matches_cpu(s, params(mask, biased, biased, score, s.H, s.q_offset), DType::bf16, seed += 8);
}

// The entropy and sink-mass outputs, and the entropy's gradient through
// dentropy, for every mask with and without ALiBi + softcap, in every dtype.
TEST(CudaFlashAttention, EntropySinkMassAndEntropyGradientMatchCpu) {
  SKIP_WITHOUT_CUDA();
  uint64_t seed = 900;
  for (DType dt : {DType::f64, DType::f32, DType::bf16})
    for (FlashMask mask : kMasks)
      for (bool biased : {false, true})
        for (const Shapes& s : {kShapes[0], kShapes[1]}) {
          FlashAttentionParams p = params(mask, biased, biased, FlashScore::softmax, s.H, s.q_offset);
          p.entropy = p.sink_mass = true;
          expect_matches_cpu(s, p, dt, seed += 8, true);
          expect_matches_cpu(s, p, dt, seed += 8, false);  // entropy out, but no loss on it
        }
}

// Head dims of every register bucket (8, 16, 32, 64 columns per thread) and
// heads wider than one block's 256 columns (several blocks along y).
TEST(CudaFlashAttention, WideHeadsMatchCpu) {
  SKIP_WITHOUT_CUDA();
  const Shapes shapes[] = {
      {1, 2, 1, 40, 40, 64, 64, 0},
      {1, 2, 2, 37, 37, 128, 128, 0},
      {1, 2, 1, 35, 35, 256, 200, 0},
      {1, 1, 1, 20, 20, 300, 260, 0},  // two blocks for dK, dV and dQ
      {1, 1, 1, 33, 33, 8, 513, 0},    // three blocks for out and dV; dK only in the first
  };
  for (const Shapes& s : shapes)
    for (FlashMask mask : {FlashMask::causal, FlashMask::none}) {
      FlashAttentionParams p = params(mask, true, true, FlashScore::softmax, s.H, 0);
      p.entropy = p.sink_mass = true;
      expect_matches_cpu(s, p, DType::f32, 40, true);
    }
  expect_matches_cpu(shapes[1], params(FlashMask::causal, false, false, FlashScore::softmax, 2, 0), DType::f64, 41);
  expect_matches_cpu(shapes[1], params(FlashMask::window, false, true, FlashScore::sigmoid, 2, 0), DType::bf16, 42);
}

// bf16 with head dims 64 and 128 takes the tensor-core kernels on sm_80+
// (flash_forward_mma.cuh, flash_backward_mma.cuh; P and dS rounded to bf16 for
// the products that take them): every mask, ALiBi +
// softcap, entropy (+ gradient) and sink mass, sigmoid, GQA, decode, and two
// query tiles of 64 with a partial one.
TEST(CudaFlashAttention, TensorCoreHeadDimsMatchCpuLoosely) {
  SKIP_WITHOUT_CUDA();
  const Shapes shapes[] = {
      {2, 4, 2, 150, 150, 64, 64, 0},
      {1, 2, 1, 9, 200, 128, 128, 191},
      {1, 2, 2, 70, 70, 64, 128, 0},
      {1, 2, 1, 33, 40, 128, 64, 7},
  };
  uint64_t seed = 1300;
  for (const Shapes& s : shapes)
    for (FlashMask mask : kMasks)
      for (bool biased : {false, true}) {
        FlashAttentionParams p = params(mask, biased, biased, FlashScore::softmax, s.H, s.q_offset);
        p.window = 40;
        p.entropy = p.sink_mass = true;
        expect_matches_cpu(s, p, DType::bf16, seed += 8, true);
        p = params(mask, biased, biased, FlashScore::sigmoid, s.H, s.q_offset);
        expect_matches_cpu(s, p, DType::bf16, seed += 8);
      }
}

// Heads too wide for any device's shared memory get one clear error.
TEST(CudaFlashAttention, HeadTooWideForSharedMemoryIsOneError) {
  SKIP_WITHOUT_CUDA();
  Tensor q = randn({1, 1, 4, 1024}, 1).to(kGpu), v = randn({1, 1, 4, 1024}, 2).to(kGpu);
  EXPECT_TRUE(throws_error([&] { ops::flash_attention(q, q, v, FlashAttentionParams{}); },
                           {"flash_attention (CUDA)", "D=1024", "f64", "shared memory"}));
}

// A row whose window holds no key: out 0, lse -inf, zero finite gradients;
// and no keys at all (Tk = 0).
TEST(CudaFlashAttention, RowsWithoutKeysMatchCpu) {
  SKIP_WITHOUT_CUDA();
  for (DType dt : {DType::f64, DType::f32}) {
    FlashAttentionParams p = params(FlashMask::window, false, false, FlashScore::softmax, 1, 6);
    p.window = 3;  // positions 6, 7: windows (3, 6] and (4, 7]; keys 0..4
    p.entropy = p.sink_mass = true;
    expect_matches_cpu({1, 1, 1, 2, 5, 3, 3, 6}, p, dt, 18, true);
    FlashAttentionParams none;
    none.mask = FlashMask::none;
    SCOPED_TRACE("Tk = 0");
    Inputs in = inputs({1, 2, 1, 3, 0, 4, 5, 0}, 19, false);
    Inputs g = convert(in, dt, true), c = convert(in, dt, false);
    Results got = run(g.q, g.k, g.v, g.g, Tensor(), none), want = run(c.q, c.k, c.v, c.g, Tensor(), none);
    EXPECT_TRUE(close_to_scale(got.out, want.out, 0, "out"));
    EXPECT_TRUE(close_to_scale(got.lse, want.lse, 0, "lse"));
    EXPECT_TRUE(close_to_scale(got.dq, want.dq, 0, "dq"));
    EXPECT_EQ(got.dk.numel(), 0);
  }
}

// B * H = 70000 blocks of heads: past gridDim.y's 65535, folded into x.
TEST(CudaFlashAttention, MoreHeadsThanGridYMatchCpu) {
  SKIP_WITHOUT_CUDA();
  expect_matches_cpu({2, 35000, 35000, 3, 3, 2, 2, 0},
                     params(FlashMask::causal, false, false, FlashScore::softmax, 35000, 0), DType::f32, 20);
}

// No atomics: the same inputs give the same bits, run after run.
TEST(CudaFlashAttention, RunToRunDeterministic) {
  SKIP_WITHOUT_CUDA();
  Shapes s{2, 6, 2, 150, 150, 12, 10, 0};
  FlashAttentionParams p = params(FlashMask::sinks, true, true, FlashScore::softmax, s.H, 0);
  p.entropy = true;
  Inputs g = convert(inputs(s, 21, true), DType::f32, true);
  Results a = run(g.q, g.k, g.v, g.g, g.dh, p), b = run(g.q, g.k, g.v, g.g, g.dh, p);
  expect_bits_equal(b.out, a.out, "out");
  expect_bits_equal(b.lse, a.lse, "lse");
  expect_bits_equal(b.entropy, a.entropy, "entropy");
  expect_bits_equal(b.dq, a.dq, "dq");
  expect_bits_equal(b.dk, a.dk, "dk");
  expect_bits_equal(b.dv, a.dv, "dv");
  // The tensor-core kernels (bf16, head dim 64) too.
  Shapes t{2, 4, 2, 150, 150, 64, 64, 0};
  FlashAttentionParams pt = params(FlashMask::sinks, true, true, FlashScore::softmax, t.H, 0);
  pt.entropy = true;
  Inputs h = convert(inputs(t, 22, true), DType::bf16, true);
  Results c = run(h.q, h.k, h.v, h.g, h.dh, pt), d = run(h.q, h.k, h.v, h.g, h.dh, pt);
  expect_bits_equal(d.out, c.out, "bf16 out");
  expect_bits_equal(d.dq, c.dq, "bf16 dq");
  expect_bits_equal(d.dk, c.dk, "bf16 dk");
  expect_bits_equal(d.dv, c.dv, "bf16 dv");
}

// bf16 inputs save an f32 lse (ops.cpp's lse_dtype); a bf16 one is refused.
TEST(CudaFlashAttention, Bf16SavesAnF32Lse) {
  SKIP_WITHOUT_CUDA();
  Tensor q = randn({1, 2, 5, 4}, 22).to(DType::bf16).to(kGpu), kv = randn({1, 1, 5, 4}, 23).to(DType::bf16).to(kGpu);
  FlashAttentionParams p;
  ops::FlashAttentionOut f = ops::flash_attention(q, kv, kv, p);
  EXPECT_EQ(f.lse.dtype(), DType::f32);
  EXPECT_EQ(f.out.dtype(), DType::bf16);
  EXPECT_TRUE(throws_error([&] { ops::flash_attention_backward(q, kv, kv, f.out, f.lse.to(DType::bf16), f.out, p); },
                           {"flash_attention_backward", "lse", "f32"}));
}
