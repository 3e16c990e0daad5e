// The fused attention kernel (ops::flash_attention, ag::flash_attention) against
// the same attention composed of autograd primitives (DESIGN principle 3):
// outputs and gradients for every mask x positional bias x softcap x head
// grouping x score it supports, on odd shapes: T not a multiple of the tile,
// Tq != Tk with a query offset (decode), D not a multiple of the vector width.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>

#include "autograd/attention.h"
#include "autograd/functions.h"
#include "core/cpu/cpu_ops.h"
#include "core/flash_testing.h"
#include "core/ops.h"
#include "core/test_helpers.h"

using namespace attnlab;
using namespace attnlab::flash_testing;
using attnlab::testing::randn;
using attnlab::testing::values;

namespace {

Tensor hide_mask(const FlashAttentionParams& p, int64_t Tq, int64_t Tk) {
  std::vector<int32_t> m(static_cast<size_t>(Tq * Tk));
  for (int64_t i = 0; i < Tq; ++i)
    for (int64_t j = 0; j < Tk; ++j) m[static_cast<size_t>(i * Tk + j)] = hidden(p, p.q_offset + i, j);
  return Tensor::from(m, {Tq, Tk});
}

// The composed path's weights [B, Hkv, G, Tq, Tk]: s = cap(scale q k^T) -
// slope |pos - j|, masked, softmax (or sigmoid(s + b)). Query heads of one kv
// group are consecutive, so q viewed as [B, Hkv, G * Tq, D] multiplies its
// group's keys directly.
Var reference_weights(const Var& q, const Var& k, const FlashAttentionParams& p) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2), G = H / Hkv;
  Var s = ag::matmul(ag::reshape(ag::scale(q, p.resolved_scale(D)), {B, Hkv, G * Tq, D}), k, false, true);
  s = ag::reshape(s, {B, Hkv, G, Tq, Tk});
  if (p.softcap > 0) s = ag::scale(ag::tanh(ag::scale(s, 1.0 / p.softcap)), p.softcap);
  if (!p.alibi_slopes.empty()) {
    std::vector<double> bias(static_cast<size_t>(H * Tq * Tk));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < Tq; ++i)
        for (int64_t j = 0; j < Tk; ++j)
          bias[static_cast<size_t>((h * Tq + i) * Tk + j)] =
              -p.alibi_slopes[static_cast<size_t>(h)] * std::abs(static_cast<double>(p.q_offset + i - j));
    s = ag::add(s, Var(Tensor::from(bias, {Hkv, G, Tq, Tk}).to(q.dtype())));
  }
  Tensor hide = hide_mask(p, Tq, Tk);
  return p.score == FlashScore::softmax
             ? ag::softmax(ag::masked_fill(s, hide, -std::numeric_limits<double>::infinity()))
             : ag::masked_fill(ag::sigmoid(ag::add_scalar(s, p.sigmoid_bias)), hide, 0.0);
}

// The composed path: the weights times v.
Var reference(const Var& q, const Var& k, const Var& v, const FlashAttentionParams& p) {
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), Hkv = k.size(1), Tk = k.size(2), Dv = v.size(3);
  Var a = reference_weights(q, k, p);
  return ag::reshape(ag::matmul(ag::reshape(a, {B, Hkv, (H / Hkv) * Tq, Tk}), v), {B, H, Tq, Dv});
}

// -sum_j a_j log a_j of the materialised weights [..., Tk] -> [...]. The
// smallest normal number inside the log keeps 0 log 0 = 0 with a finite
// gradient (which the softmax's backward multiplies by a_j = 0).
Var reference_entropy(const Var& a) {
  const double tiny = a.dtype() == DType::f64 ? std::numeric_limits<double>::min()
                                              : static_cast<double>(std::numeric_limits<float>::min());
  return ag::neg(ag::sum_last(ag::mul(a, ag::log(ag::add_scalar(a, tiny)))));
}

double rtol_for(DType t) { return t == DType::f64 ? 1e-12 : 1e-5; }

struct Result {
  Tensor out, dq, dk, dv;
};

Result run(bool fused, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& g,
        const FlashAttentionParams& p) {
  Var vq(q.clone(), true), vk(k.clone(), true), vv(v.clone(), true);
  Var out = fused ? ag::flash_attention(vq, vk, vv, p) : reference(vq, vk, vv, p);
  out.backward(g);
  return {out.data(), vq.grad(), vk.grad(), vv.grad()};
}

struct Inputs {
  Tensor q, k, v, g;
};

Inputs inputs(const Shapes& s, DType t, uint64_t seed) {
  return {randn({s.B, s.H, s.Tq, s.D}, seed, t), randn({s.B, s.Hkv, s.Tk, s.D}, seed + 1, t),
          randn({s.B, s.Hkv, s.Tk, s.Dv}, seed + 2, t), randn({s.B, s.H, s.Tq, s.Dv}, seed + 3, t)};
}

void expect_matches_reference(const Shapes& s, const FlashAttentionParams& p, DType t, uint64_t seed) {
  SCOPED_TRACE(describe(s, p, t));
  Inputs in = inputs(s, t, seed);
  Result f = run(true, in.q, in.k, in.v, in.g, p), r = run(false, in.q, in.k, in.v, in.g, p);
  double tol = rtol_for(t);
  EXPECT_TRUE(close_to_scale(f.out, r.out, tol, "out"));
  EXPECT_TRUE(close_to_scale(f.dq, r.dq, tol, "dq"));
  EXPECT_TRUE(close_to_scale(f.dk, r.dk, tol, "dk"));
  EXPECT_TRUE(close_to_scale(f.dv, r.dv, tol, "dv"));
}

}  // namespace

// Every policy combination, on one multi-tile training shape and one decode
// shape (Tq < Tk, q_offset = Tk - Tq), in f32 and f64.
TEST(FlashAttention, MatchesComposedPath) {
  const Shapes grouped[] = {
      {2, 4, 2, 70, 70, 5, 7, 0},     // GQA, T = 64 + 6: a full and a partial tile
      {1, 3, 1, 9, 133, 13, 13, 124},  // MQA decode: 9 new queries after 124 cached keys
      {1, 2, 2, 1, 1, 3, 2, 0},        // MHA, a single token
  };
  uint64_t seed = 100;
  for (DType t : {DType::f64, DType::f32})
    for (FlashScore score : {FlashScore::softmax, FlashScore::sigmoid})
      for (FlashMask mask : kMasks)
        for (bool alibi : {false, true})
          for (bool softcap : {false, true})
            for (const Shapes& s : grouped) {
              FlashAttentionParams p = params(mask, alibi, softcap, score, s.H);
              p.q_offset = s.q_offset;
              expect_matches_reference(s, p, t, seed += 4);
            }
}

// Longer sequences where windows skip whole key tiles and sinks keep the first
// tile partly visible; a non-default scale.
TEST(FlashAttention, MatchesComposedPathAcrossSkippedTiles) {
  for (DType t : {DType::f64, DType::f32})
    for (FlashMask mask : kMasks) {
      Shapes s{1, 2, 1, 200, 200, 16, 9, 0};
      FlashAttentionParams p = params(mask, true, false, FlashScore::softmax, s.H);
      p.window = 40;
      p.scale = 0.3;
      expect_matches_reference(s, p, t, 7);
      Shapes decode{1, 2, 2, 3, 197, 16, 9, 194};
      p.q_offset = decode.q_offset;
      expect_matches_reference(decode, p, t, 8);
    }
}

// Bidirectional attention of fewer queries than keys, queries in the middle.
TEST(FlashAttention, MatchesComposedPathCrossLengths) {
  Shapes s{2, 2, 1, 67, 131, 6, 4, 30};
  for (DType t : {DType::f64, DType::f32}) {
    FlashAttentionParams p = params(FlashMask::none, true, true, FlashScore::softmax, s.H);
    p.q_offset = s.q_offset;
    expect_matches_reference(s, p, t, 9);
  }
}

// Both backward schedules give the reference's gradients, and the same bits as
// each other for dk and dv (each sums its blocks in the same order).
TEST(FlashAttention, BackwardSchedulesAgree) {
  Shapes s{2, 6, 2, 150, 150, 12, 10, 0};
  for (FlashMask mask : kMasks) {
    FlashAttentionParams p = params(mask, true, true, FlashScore::softmax, s.H);
    p.window = 70;
    SCOPED_TRACE(describe(s, p, DType::f64));
    Inputs in = inputs(s, DType::f64, 11);
    ops::FlashAttentionOut fwd = ops::flash_attention(in.q, in.k, in.v, p);
    Result r = run(false, in.q, in.k, in.v, in.g, p);
    Tensor dk0;
    for (auto sched : {cpu::FlashBackwardSchedule::per_kv_head, cpu::FlashBackwardSchedule::two_pass}) {
      Tensor dq = Tensor::empty_like(in.q), dk = Tensor::empty_like(in.k), dv = Tensor::empty_like(in.v);
      cpu::flash_attention_backward(in.q, in.k, in.v, fwd.out, fwd.lse, in.g, p, dq, dk, dv, sched);
      EXPECT_TRUE(close_to_scale(dq, r.dq, 1e-12, "dq"));
      EXPECT_TRUE(close_to_scale(dk, r.dk, 1e-12, "dk"));
      EXPECT_TRUE(close_to_scale(dv, r.dv, 1e-12, "dv"));
      if (dk0.defined()) {
        EXPECT_EQ(values(dk), values(dk0));
      }
      dk0 = dk;
    }
  }
}

// The same bits whatever the number of threads (DESIGN principle 8).
TEST(FlashAttention, DeterministicAcrossThreadCounts) {
  Shapes s{2, 4, 2, 130, 130, 8, 8, 0};
  Inputs in = inputs(s, DType::f32, 12);
  FlashAttentionParams p = params(FlashMask::causal, false, false, FlashScore::softmax, s.H);
  int before = omp_get_max_threads();
  std::vector<Result> runs;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    runs.push_back(run(true, in.q, in.k, in.v, in.g, p));
  }
  omp_set_num_threads(before);
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_EQ(values(runs[i].out), values(runs[0].out));
    EXPECT_EQ(values(runs[i].dq), values(runs[0].dq));
    EXPECT_EQ(values(runs[i].dk), values(runs[0].dk));
    EXPECT_EQ(values(runs[i].dv), values(runs[0].dv));
  }
}

// ---- properties ----

TEST(FlashAttention, WindowCoveringTheSequenceIsCausal) {
  Shapes s{1, 2, 1, 100, 100, 8, 8, 0};
  Inputs in = inputs(s, DType::f64, 13);
  FlashAttentionParams causal = params(FlashMask::causal, false, false, FlashScore::softmax, s.H), window = causal;
  window.mask = FlashMask::window;
  window.window = 100;
  Result a = run(true, in.q, in.k, in.v, in.g, causal), b = run(true, in.q, in.k, in.v, in.g, window);
  EXPECT_EQ(values(a.out), values(b.out));
  EXPECT_EQ(values(a.dq), values(b.dq));
  EXPECT_EQ(values(a.dk), values(b.dk));
}

// GQA equals MHA with each kv head repeated for its group; the kv gradients are
// the group sums of the repeated heads' gradients.
TEST(FlashAttention, GroupedEqualsRepeatedHeads) {
  const int64_t B = 2, H = 6, Hkv = 2, G = H / Hkv, T = 75, D = 7;
  Shapes s{B, H, Hkv, T, T, D, D, 0};
  Inputs in = inputs(s, DType::f64, 14);
  auto repeat = [&](const Tensor& x) {  // [B, Hkv, T, D] -> [B, H, T, D]
    std::vector<Tensor> heads;
    for (const Tensor& h : ops::split(x, std::vector<int64_t>(Hkv, 1), 1))
      for (int64_t g = 0; g < G; ++g) heads.push_back(h);
    return ops::concat(heads, 1);
  };
  FlashAttentionParams p = params(FlashMask::causal, false, false, FlashScore::softmax, H);
  Result gqa = run(true, in.q, in.k, in.v, in.g, p);
  Result mha = run(true, in.q, repeat(in.k), repeat(in.v), in.g, p);
  EXPECT_TRUE(close_to_scale(gqa.out, mha.out, 1e-14, "out"));
  EXPECT_TRUE(close_to_scale(gqa.dq, mha.dq, 1e-14, "dq"));
  Tensor dk_sum = ops::sum_last(ops::transpose(mha.dk.reshape({B, Hkv, G, T, D}), 2, 4)).reshape({B, Hkv, D, T});
  EXPECT_TRUE(close_to_scale(gqa.dk, ops::transpose(dk_sum, 2, 3), 1e-13, "dk"));
}

TEST(FlashAttention, ZeroAlibiSlopesAreNoBias) {
  Shapes s{1, 3, 3, 40, 40, 5, 5, 0};
  Inputs in = inputs(s, DType::f64, 15);
  FlashAttentionParams plain = params(FlashMask::causal, false, false, FlashScore::softmax, s.H), zero = plain;
  zero.alibi_slopes.assign(3, 0.0);
  Result a = run(true, in.q, in.k, in.v, in.g, plain), b = run(true, in.q, in.k, in.v, in.g, zero);
  EXPECT_EQ(values(a.out), values(b.out));
  EXPECT_EQ(values(a.dk), values(b.dk));
}

TEST(FlashAttention, HugeSoftcapIsNoSoftcap) {
  Shapes s{1, 2, 1, 40, 40, 5, 5, 0};
  Inputs in = inputs(s, DType::f64, 16);
  FlashAttentionParams plain = params(FlashMask::causal, false, false, FlashScore::softmax, s.H), capped = plain;
  capped.softcap = 1e8;
  Result a = run(true, in.q, in.k, in.v, in.g, plain), b = run(true, in.q, in.k, in.v, in.g, capped);
  EXPECT_TRUE(close_to_scale(b.out, a.out, 1e-12, "out"));
  EXPECT_TRUE(close_to_scale(b.dq, a.dq, 1e-12, "dq"));
  EXPECT_TRUE(close_to_scale(b.dk, a.dk, 1e-12, "dk"));
}

// The running entropy sum equals -sum p log p of the materialised softmax.
TEST(FlashAttention, EntropyMatchesMaterialisedSoftmax) {
  for (DType t : {DType::f64, DType::f32})
    for (FlashMask mask : kMasks) {
      Shapes s{1, 4, 2, 90, 90, 6, 6, 0};
      FlashAttentionParams p = params(mask, true, false, FlashScore::softmax, s.H);
      p.window = 20;
      SCOPED_TRACE(describe(s, p, t));
      Inputs in = inputs(s, t, 17);
      ag::FlashAttentionWithEntropy r = ag::flash_attention_with_entropy(Var(in.q), Var(in.k), Var(in.v), p);
      const Var& out = r.out;
      const Tensor& entropy = r.entropy.data();
      // The reference's weights: the attention applied to v = identity rows.
      std::vector<double> e(static_cast<size_t>(2 * 90 * 90), 0.0);
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t j = 0; j < 90; ++j) e[static_cast<size_t>((h * 90 + j) * 90 + j)] = 1.0;
      Tensor ident = Tensor::from(e, {1, 2, 90, 90}).to(t);
      std::vector<double> a = values(reference(Var(in.q), Var(in.k), Var(ident), p).data());
      std::vector<double> want(static_cast<size_t>(4 * 90));
      for (size_t r = 0; r < want.size(); ++r) {
        double h = 0;
        for (size_t j = 0; j < 90; ++j) {
          double pj = a[r * 90 + j];
          if (pj > 0) h -= pj * std::log(pj);
        }
        want[r] = h;
      }
      EXPECT_TRUE(close_to_scale(entropy, Tensor::from(want, {1, 4, 90}), t == DType::f64 ? 1e-12 : 1e-5, "entropy"));
      EXPECT_TRUE(close_to_scale(out.data(), reference(Var(in.q), Var(in.k), Var(in.v), p).data(), rtol_for(t), "out"));
    }
}

// The entropy output is differentiable: a loss on out and H gives the
// gradients of the same loss on the materialised weights (values too), for
// every mask, ALiBi and softcap, grouped heads, multi-tile and decode shapes;
// and the sink mass equals the weight on key 0.
TEST(FlashAttention, EntropyGradientMatchesMaterialised) {
  const Shapes shapes[] = {
      {2, 4, 2, 70, 70, 5, 7, 0},     // GQA over a full and a partial tile
      {1, 3, 1, 9, 133, 13, 13, 124},  // MQA decode
  };
  uint64_t seed = 300;
  for (DType t : {DType::f64, DType::f32})
    for (FlashMask mask : kMasks)
      for (bool alibi : {false, true})
        for (const Shapes& sh : shapes) {
          FlashAttentionParams p = params(mask, alibi, alibi, FlashScore::softmax, sh.H);
          p.q_offset = sh.q_offset;
          p.sink_mass = true;
          SCOPED_TRACE(describe(sh, p, t));
          Inputs in = inputs(sh, t, seed += 4);
          Tensor w = randn({sh.B, sh.H, sh.Tq}, seed + 1, t);
          for (bool use_out : {true, false}) {  // false: the loss reads only the entropy
            auto loss = [&](const Var& out, const Var& H) {
              Var l = ag::sum_all(ag::mul(H, Var(w)));
              return use_out ? ag::add(l, ag::sum_all(ag::mul(out, Var(in.g)))) : l;
            };
            Var fq(in.q.clone(), true), fk(in.k.clone(), true), fv(in.v.clone(), true);
            ag::FlashAttentionWithEntropy f = ag::flash_attention_with_entropy(fq, fk, fv, p);
            loss(f.out, f.entropy).backward();
            Var rq(in.q.clone(), true), rk(in.k.clone(), true), rv(in.v.clone(), true);
            Var a = reference_weights(rq, rk, p);  // [B, Hkv, G, Tq, Tk]
            Var H = ag::reshape(reference_entropy(a), {sh.B, sh.H, sh.Tq});
            Var out = reference(rq, rk, rv, p);
            loss(out, H).backward();
            const double tol = t == DType::f64 ? 1e-11 : 2e-4;
            EXPECT_TRUE(close_to_scale(f.entropy.data(), H.data(), tol, "entropy"));
            Tensor sink = ag::reshape(ag::narrow(a, 4, 0, 1), {sh.B, sh.H, sh.Tq}).data();
            EXPECT_TRUE(close_to_scale(f.sink_mass, sink, rtol_for(t), "sink_mass"));
            EXPECT_TRUE(close_to_scale(fq.grad(), rq.grad(), tol, "dq"));
            EXPECT_TRUE(close_to_scale(fk.grad(), rk.grad(), tol, "dk"));
            if (use_out) {
              EXPECT_TRUE(close_to_scale(fv.grad(), rv.grad(), tol, "dv"));
            }
          }
        }
}

// visible_keys counts what the mask definitions (hidden(), above) let through.
TEST(FlashAttention, VisibleKeysCountsTheMask) {
  for (FlashMask mask : kMasks)
    for (int64_t sinks : {0, 2, 5}) {
      FlashAttentionParams p = params(mask, false, false, FlashScore::softmax, 1);
      p.window = 4;
      p.sinks = sinks;
      for (int64_t pos = 0; pos < 12; ++pos) {
        int64_t want = 0;
        for (int64_t j = 0; j < 9; ++j) want += !hidden(p, pos, j);
        EXPECT_EQ(p.visible_keys(pos, 9), want) << p.str() << " pos " << pos;
      }
    }
}

// A query whose window holds no key (decode past the end of the keys): output
// 0, lse -inf, and zero, finite gradients.
TEST(FlashAttention, RowWithoutKeysIsZero) {
  Shapes s{1, 1, 1, 2, 5, 3, 3, 0};
  Inputs in = inputs(s, DType::f64, 18);
  FlashAttentionParams p = params(FlashMask::window, false, false, FlashScore::softmax, 1);
  p.window = 3;
  p.q_offset = 6;  // positions 6, 7: windows (3, 6] and (4, 7]; keys 0..4
  ops::FlashAttentionOut f = ops::flash_attention(in.q, in.k, in.v, p);
  std::vector<double> lse = values(f.lse), out = values(f.out);
  EXPECT_TRUE(std::isfinite(lse[0]));
  EXPECT_EQ(lse[1], -std::numeric_limits<double>::infinity());
  for (int64_t x = 3; x < 6; ++x) EXPECT_EQ(out[static_cast<size_t>(x)], 0.0);
  Result r = run(true, in.q, in.k, in.v, in.g, p);
  for (double x : values(r.dq)) EXPECT_TRUE(std::isfinite(x));
  for (double x : values(r.dk)) EXPECT_TRUE(std::isfinite(x));
  std::vector<double> dq = values(r.dq);
  for (int64_t x = 3; x < 6; ++x) EXPECT_EQ(dq[static_cast<size_t>(x)], 0.0);
}

// The log-sum-exp the forward saves is that of the masked, biased scores.
TEST(FlashAttention, LseIsLogSumExpOfScores) {
  Shapes s{1, 2, 1, 70, 70, 4, 4, 0};
  Inputs in = inputs(s, DType::f64, 19);
  FlashAttentionParams p = params(FlashMask::sinks, true, true, FlashScore::softmax, s.H);
  ops::FlashAttentionOut f = ops::flash_attention(in.q, in.k, in.v, p);
  std::vector<double> q = values(in.q), k = values(in.k), lse = values(f.lse);
  double scale = p.resolved_scale(4);
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 70; ++i) {
      double m = -INFINITY;
      std::vector<double> sc;
      for (int64_t j = 0; j < 70; ++j) {
        if (hidden(p, i, j)) continue;
        double dot = 0;
        for (int64_t c = 0; c < 4; ++c) dot += q[static_cast<size_t>((h * 70 + i) * 4 + c)] * k[static_cast<size_t>(j * 4 + c)];
        double x = p.softcap * std::tanh(scale * dot / p.softcap) - p.alibi_slopes[static_cast<size_t>(h)] * std::abs(double(i - j));
        sc.push_back(x);
        m = std::max(m, x);
      }
      double sum = 0;
      for (double x : sc) sum += std::exp(x - m);
      EXPECT_NEAR(lse[static_cast<size_t>(h * 70 + i)], m + std::log(sum), 1e-12) << "head " << h << " row " << i;
    }
}
