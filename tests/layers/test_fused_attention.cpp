// The fused-attention adapter (layers/attention/fused.h) inside the softmax
// attention layer: with the kernel in place of the composed scores, the layer's
// output and every gradient match the layer's own (composed) forward, in
// training and in KV-cache decoding, for each option combination the adapter
// claims to support.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/functions.h"
#include "core/ops.h"
#include "layers/attention/fused.h"
#include "layers/attention/registry.h"
#include "layers/attention/rope.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::test_util;

namespace {

constexpr int64_t kC = 12;

AttnOptions opts(int64_t h, int64_t hkv, PosKind pos, MaskKind mask = MaskKind::causal, int64_t window = 0) {
  AttnOptions o;
  o.n_head = h;
  o.n_kv_head = hkv;
  o.d_head = 5;
  o.pos = pos;
  o.rope_fraction = 0.8;
  o.mask = mask;
  o.window = window;
  return o;
}

Var linear(const Attention& a, const std::string& name, const Var& x) {
  return ag::add(ag::matmul(x, a.parameter(name + ".weight"), false, true), a.parameter(name + ".bias"));
}

Var heads(const Var& x, int64_t n, int64_t d) {
  return ag::transpose(ag::reshape(x, {x.size(0), x.size(1), n, d}), 1, 2);
}

// SoftmaxAttention::run with ag::flash_attention (through the adapter) for the
// scores: projections, RoPE on q and k at positions pos0.., the kernel over
// keys `k_all`/`v_all` when given (a KV cache), merged heads, wo.
Var fused_layer(const Attention& a, const Var& x, int64_t pos0, const Tensor& k_all = Tensor(),
                const Tensor& v_all = Tensor()) {
  const AttnOptions& o = a.options();
  Var q = heads(linear(a, "wq", x), o.n_head, o.d_head);
  Var k = heads(linear(a, "wk", x), o.n_kv_head, o.d_head);
  Var v = heads(linear(a, "wv", x), o.n_kv_head, o.d_head);
  if (o.pos == PosKind::rope) {
    RopeTable rope(rope_rotated_dims(o), o.rope_theta);
    q = rope.apply(q, pos0);
    k = rope.apply(k, pos0);
  }
  if (k_all.defined()) {
    k = Var(k_all);
    v = Var(v_all);
  }
  Var y = fused_attention(q, k, v, o, pos0);
  y = ag::reshape(ag::transpose(y, 1, 2), {x.size(0), x.size(1), o.n_head * o.d_head});
  return linear(a, "wo", y);
}

std::vector<AttnOptions> supported() {
  return {opts(2, 2, PosKind::nope),
          opts(4, 2, PosKind::rope),
          opts(3, 1, PosKind::rope),
          opts(2, 1, PosKind::rope, MaskKind::window, 4),
          opts(4, 2, PosKind::nope, MaskKind::none)};
}

std::string describe(const AttnOptions& o) {
  return detail::cat("H=", o.n_head, " Hkv=", o.n_kv_head, " pos=", pos_kind_name(o.pos), " mask=",
                     mask_kind_name(o.mask), " window=", o.window);
}

}  // namespace

TEST(FusedAttention, SupportsTheComposedPathsOptions) {
  for (const AttnOptions& o : supported()) EXPECT_TRUE(fused_supports(o)) << describe(o);
  AttnOptions other = opts(2, 2, PosKind::rope);
  other.kind = "linear";
  EXPECT_FALSE(fused_supports(other));
  try {
    fused_params(other, 0);
    ADD_FAILURE() << "fused_params accepted kind=linear";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kind=linear"), std::string::npos) << e.what();
  }
}

TEST(FusedAttention, ParamsFollowTheOptions) {
  FlashAttentionParams p = fused_params(opts(4, 2, PosKind::rope, MaskKind::window, 7), 11);
  EXPECT_EQ(p.mask, FlashMask::window);
  EXPECT_EQ(p.window, 7);
  EXPECT_EQ(p.q_offset, 11);
  EXPECT_DOUBLE_EQ(p.scale, 1.0 / std::sqrt(5.0));
  EXPECT_EQ(p.score, FlashScore::softmax);
  EXPECT_TRUE(p.alibi_slopes.empty());
  EXPECT_EQ(fused_params(opts(2, 2, PosKind::nope, MaskKind::none), 0).mask, FlashMask::none);
  EXPECT_EQ(fused_params(opts(2, 2, PosKind::nope), 0).mask, FlashMask::causal);
}

TEST(FusedAttention, LayerOutputAndGradientsMatchTheComposedPath) {
  uint64_t seed = 1;
  for (const AttnOptions& o : supported()) {
    SCOPED_TRACE(describe(o));
    auto a = make_attention(kC, 0, o, true);
    a->to(DType::f64);
    randomize(*a, seed++);
    Tensor x = randn({2, 9, kC}, seed++);
    Tensor g = randn({2, 9, kC}, seed++);
    auto grads = [&](bool fused) {
      for (Var& p : a->parameters()) p.grad() = Tensor();
      Var vx(x.clone(), true);
      Var y = fused ? fused_layer(*a, vx, 0) : a->forward(vx);
      y.backward(g);
      std::vector<Tensor> out{y.data(), vx.grad()};
      for (const Var& p : a->parameters()) out.push_back(p.grad());
      return out;
    };
    std::vector<Tensor> want = grads(false), got = grads(true);
    ASSERT_EQ(want.size(), got.size());
    for (size_t i = 0; i < want.size(); ++i) EXPECT_LT(max_abs_diff(got[i], want[i]), 1e-12) << "tensor " << i;
  }
}

// Prefill then single tokens: the kernel reads the whole cache with q_offset =
// the cache position, and matches the layer's forward_step.
TEST(FusedAttention, DecodeMatchesForwardStep) {
  for (const AttnOptions& o : supported()) {
    SCOPED_TRACE(describe(o));
    auto a = make_attention(kC, 0, o, true);
    a->to(DType::f64);
    randomize(*a, 5);
    Tensor x = randn({2, 8, kC}, 6);
    NoGradGuard no_grad;
    AttnCache cache;
    for (const Tensor& chunk : ops::split(x, {5, 1, 1, 1}, 1)) {
      int64_t pos0 = cache.pos;
      Tensor want = a->forward_step(Var(chunk), cache).data();
      Tensor got = fused_layer(*a, Var(chunk), pos0, cache.state.at("k"), cache.state.at("v")).data();
      EXPECT_LT(max_abs_diff(got, want), 1e-12) << "at position " << pos0;
    }
  }
}
