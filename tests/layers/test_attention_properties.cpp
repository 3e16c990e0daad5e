// Properties that tie the axes together: each new value reduces to an old one
// at its neutral setting (window >= T is causal, zero ALiBi slopes are NoPE,
// sinks with S = 0 are the window, MoBA with k >= blocks is causal, softcap -> inf
// is plain, rope_scale = 1 is RoPE, ...), plus the exact patterns and constants.
#include <gtest/gtest.h>

#include "core/ops.h"
#include "layers/attention/alibi.h"
#include "layers/attention/mask.h"
#include "layers/attention/rope.h"
#include "layers/attention/softmax_attention.h"
#include "layers/attention_testing.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::attn_test;
using test_util::max_abs_diff;

namespace {

// y of module `b` built with `ob`, holding `a`'s parameters.
Tensor with_weights_of(const Attention& a, const AttnOptions& ob, const Tensor& x, uint64_t seed = 0) {
  auto b = make(ob, seed);
  b->load_state_dict(a.state_dict());
  return b->forward(Var(x)).data();
}

std::vector<int32_t> mask_row(const AttnOptions& o, int64_t q, int64_t Tk) {
  Tensor m = make_attn_mask(o, 1, Tk, q);
  return m.defined() ? m.to_vector<int32_t>() : std::vector<int32_t>(static_cast<size_t>(Tk), 0);
}

}  // namespace

TEST(AttentionProperties, WindowAtLeastTIsCausal) {
  const int64_t T = 6;
  AttnOptions causal = base();
  auto a = make(causal, 1);
  Tensor x = randn({2, T, kC}, 2);
  Tensor y = a->forward(Var(x)).data();
  for (int64_t w : {T, T + 3}) {
    AttnOptions o = causal;
    o.mask = MaskKind::window, o.window = w;
    EXPECT_EQ(max_abs_diff(with_weights_of(*a, o, x), y), 0.0) << "window " << w;
  }
  AttnOptions o = causal;
  o.mask = MaskKind::window, o.window = T - 1;  // and a smaller window does differ
  EXPECT_GT(max_abs_diff(with_weights_of(*a, o, x), y), 1e-6);
}

TEST(AttentionProperties, KvHeadsEqualToHeadsIsMHA) {
  // n_kv_head = n_head resolves to MHA: the same module as the default, and the
  // loop reference's per-head keys (no sharing) agree with it.
  AttnOptions mha = base(4, 0);
  auto a = make(mha, 3);
  Tensor x = randn({2, 5, kC}, 4);
  EXPECT_EQ(a->options().n_kv_head, 4);
  AttnOptions explicit_kv = mha;
  explicit_kv.n_kv_head = 4;
  EXPECT_EQ(max_abs_diff(with_weights_of(*a, explicit_kv, x), a->forward(Var(x)).data()), 0.0);
  EXPECT_LT(max_abs_diff(a->forward(Var(x)).data(), reference(*a, x)), 1e-12);
}

TEST(AttentionProperties, SparseQueryAttentionKeepsTheHeadWidth) {
  // SQA: n_head = 4 fixes D = d_model / 4 = 2; only n_q_head = 2 query heads run.
  AttnOptions o = base(4, 1);
  o.d_head = 0, o.n_q_head = 2;
  auto a = make(o, 5);
  EXPECT_EQ(a->options().n_head, 2);
  EXPECT_EQ(a->options().d_head, 2);
  EXPECT_EQ(a->parameter("wq.weight").shape(), (Shape{4, kC}));
  EXPECT_EQ(a->parameter("wk.weight").shape(), (Shape{2, kC}));
  EXPECT_EQ(a->parameter("wo.weight").shape(), (Shape{kC, 4}));
  // It is exactly a 2-head layer of width 2 ...
  AttnOptions plain = base(2, 1);
  plain.d_head = 2;
  Tensor x = randn({2, 5, kC}, 6);
  EXPECT_EQ(max_abs_diff(with_weights_of(*a, plain, x), a->forward(Var(x)).data()), 0.0);
  // ... and n_q_head = n_head is plain attention.
  AttnOptions same = base(4, 2);
  same.n_q_head = 4;
  EXPECT_EQ(resolve_attn_options(same, kC, 4).n_head, 4);
  same.n_q_head = 5;
  EXPECT_THROW(resolve_attn_options(same, kC, 4), Error);
}

TEST(AttentionProperties, AlibiWithZeroSlopesIsNope) {
  AttnOptions o = base(4, 2, PosKind::alibi);
  auto a = make(o, 7);
  Tensor x = randn({2, 6, kC}, 8);
  Tensor with_slopes = a->forward(Var(x)).data();
  dynamic_cast<SoftmaxAttention&>(*a).set_alibi_slopes(std::vector<double>(4, 0.0));
  Tensor zero = a->forward(Var(x)).data();
  EXPECT_EQ(max_abs_diff(zero, with_weights_of(*a, base(4, 2, PosKind::nope), x)), 0.0);
  EXPECT_GT(max_abs_diff(zero, with_slopes), 1e-6);
}

TEST(AttentionProperties, AlibiSlopes) {
  auto pow2 = [](double e) { return std::exp2(e); };
  auto s8 = alibi_slopes(8);
  for (int h = 0; h < 8; ++h) EXPECT_DOUBLE_EQ(s8[h], pow2(-(h + 1)));  // 2^(-8h/H), h = 1..8
  // 6 heads: the 4 slopes of 4 heads, then the odd-indexed slopes of 8 heads.
  std::vector<double> want6 = {pow2(-2), pow2(-4), pow2(-6), pow2(-8), pow2(-1), pow2(-3)};
  auto s6 = alibi_slopes(6);
  ASSERT_EQ(s6.size(), 6u);
  for (int h = 0; h < 6; ++h) EXPECT_DOUBLE_EQ(s6[h], want6[h]) << h;
  EXPECT_DOUBLE_EQ(alibi_slopes(1)[0], pow2(-8));
  auto s12 = alibi_slopes(12);
  EXPECT_DOUBLE_EQ(s12[8], pow2(-0.5));
  EXPECT_DOUBLE_EQ(s12[11], pow2(-3.5));
  // alibi_scale s at distances s*d gives the bias of scale 1 at d (interpolation).
  std::vector<double> sl = {0.5, 0.25};
  auto plain = alibi_bias(sl, 1, 4, 3, 1.0, DType::f64, Device::cpu()).to_vector<double>();
  auto scaled = alibi_bias(sl, 1, 7, 6, 2.0, DType::f64, Device::cpu()).to_vector<double>();
  for (int h = 0; h < 2; ++h)
    for (int d = 0; d < 4; ++d) EXPECT_DOUBLE_EQ(plain[h * 4 + (3 - d)], scaled[h * 7 + (6 - 2 * d)]) << h << d;
  EXPECT_DOUBLE_EQ(plain[0 * 4 + 0], -0.5 * 3);
}

TEST(AttentionProperties, SinksWithoutSinkTokensAreTheWindow) {
  AttnOptions w = base();
  w.mask = MaskKind::window, w.window = 2;
  auto a = make(w, 9);
  Tensor x = randn({2, 7, kC}, 10);
  AttnOptions s = w;
  s.mask = MaskKind::sinks, s.sink_tokens = 0;
  EXPECT_EQ(max_abs_diff(with_weights_of(*a, s, x), a->forward(Var(x)).data()), 0.0);
  s.sink_tokens = 1;
  EXPECT_GT(max_abs_diff(with_weights_of(*a, s, x), a->forward(Var(x)).data()), 1e-6);
}

TEST(AttentionProperties, MobaWithAllBlocksIsCausal) {
  AttnOptions c = base();
  c.impl = AttnImpl::reference;  // bit-exact comparison of two composed masks
  auto a = make(c, 11);
  Tensor x = randn({2, 8, kC}, 12);
  Tensor y = a->forward(Var(x)).data();
  for (int64_t k : {4, 9}) {  // 8 positions in blocks of 2: 4 blocks
    AttnOptions m = c;
    m.mask = MaskKind::moba, m.moba_block = 2, m.moba_topk = k;
    EXPECT_EQ(max_abs_diff(with_weights_of(*a, m, x), y), 0.0) << "k = " << k;
  }
  AttnOptions m = c;
  m.mask = MaskKind::moba, m.moba_block = 2, m.moba_topk = 2;
  EXPECT_GT(max_abs_diff(with_weights_of(*a, m, x), y), 1e-6);
  // k = 1: only the own block, a block-diagonal causal mask.
  m.moba_topk = 1;
  auto b = make(m, 13);
  EXPECT_LT(max_abs_diff(b->forward(Var(x)).data(), reference(*b, x)), 1e-12);
}

TEST(AttentionProperties, RopeScaleOneIsRope) {
  AttnOptions r = base();
  auto a = make(r, 14);
  Tensor x = randn({2, 6, kC}, 15);
  AttnOptions s = r;
  s.rope_scale = 1.0;
  EXPECT_EQ(max_abs_diff(with_weights_of(*a, s, x), a->forward(Var(x)).data()), 0.0);
  // Interpolation: scale 3 at position 3m rotates as scale 1 at m.
  RopeTable plain(4, 10000.0), interp(4, 10000.0, 3.0);
  for (int64_t m : {0, 1, 5, 40}) {
    auto [c1, s1] = plain.rows(m, 1, DType::f64, Device::cpu());
    auto [c3, s3] = interp.rows(3 * m, 1, DType::f64, Device::cpu());
    EXPECT_LT(max_abs_diff(c1, c3), 1e-12) << m;
    EXPECT_LT(max_abs_diff(s1, s3), 1e-12) << m;
  }
}

TEST(AttentionProperties, SoftcapToInfinityIsPlain) {
  AttnOptions o = base();
  auto a = make(o, 16);
  Tensor x = randn({2, 6, kC}, 17);
  AttnOptions capped = o;
  capped.softcap = 1e7;
  EXPECT_LT(max_abs_diff(with_weights_of(*a, capped, x), a->forward(Var(x)).data()), 1e-11);
  capped.softcap = 0.5;  // a tight cap does change the output
  EXPECT_GT(max_abs_diff(with_weights_of(*a, capped, x), a->forward(Var(x)).data()), 1e-6);
}

TEST(AttentionProperties, FreshConvIsTheIdentity) {
  AttnOptions o = base();
  auto a = make(o, 18);
  AttnOptions c = o;
  c.conv = 4;
  auto b = make_attention(kC, 0, c, true);
  b->to(DType::f64);
  auto sd = a->state_dict();
  for (auto& [n, t] : b->state_dict())
    if (sd.count(n)) t.copy_(sd.at(n));  // shared weights; the conv keeps its identity start
  EXPECT_EQ(b->parameter("q_conv.weight").shape(), (Shape{16, 1, 4}));
  Tensor x = randn({2, 6, kC}, 19);
  EXPECT_EQ(max_abs_diff(b->forward(Var(x)).data(), a->forward(Var(x)).data()), 0.0);
}

TEST(AttentionProperties, LengthScaleIsOneAtTheTrainingLength) {
  // With T = train_len the last query's factor log(T)/log(T_train) is 1: its row
  // equals plain attention's.
  AttnOptions o = base();
  o.train_len = 6;
  auto a = make(o, 20);
  AttnOptions l = o;
  l.length_scale = true;
  Tensor x = randn({1, 6, kC}, 21);
  auto y = a->forward(Var(x)).data().to_vector<double>(), yl = with_weights_of(*a, l, x).to_vector<double>();
  for (int64_t c = 0; c < kC; ++c) EXPECT_NEAR(y[5 * kC + c], yl[5 * kC + c], 1e-14);
  EXPECT_GT(std::abs(y[2 * kC] - yl[2 * kC]), 1e-9);
}

TEST(AttentionProperties, MaskPatterns) {
  AttnOptions o;
  o.mask = MaskKind::strided, o.stride = 3;  // i - j < 3 or (i - j) % 3 == 0
  EXPECT_EQ(mask_row(o, 6, 8), (std::vector<int32_t>{0, 1, 1, 0, 0, 0, 0, 1}));
  o.mask = MaskKind::fixed, o.summary = 1;  // same block of 3, or j % 3 == 2
  EXPECT_EQ(mask_row(o, 7, 9), (std::vector<int32_t>{1, 1, 0, 1, 1, 0, 0, 0, 1}));
  o.summary = 2;
  EXPECT_EQ(mask_row(o, 7, 9), (std::vector<int32_t>{1, 0, 0, 1, 0, 0, 0, 0, 1}));
  o.mask = MaskKind::sinks, o.window = 2, o.sink_tokens = 2;  // first 2 keys + the window
  EXPECT_EQ(mask_row(o, 6, 7), (std::vector<int32_t>{0, 0, 1, 1, 1, 0, 0}));
  o.mask = MaskKind::window;
  EXPECT_EQ(mask_row(o, 6, 7), (std::vector<int32_t>{1, 1, 1, 1, 1, 0, 0}));
  EXPECT_FALSE(make_attn_mask(MaskKind::causal, 0, 1, 4, 3).defined());  // the plain overload still works
}

TEST(AttentionProperties, ParametersPerAxis) {
  auto has = [](const Module& m, const std::string& n) {
    auto names = names_of(m);
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  AttnOptions o = base();
  EXPECT_EQ(names_of(*make(o, 0)), (std::vector<std::string>{"wq.weight", "wq.bias", "wk.weight", "wk.bias",
                                                               "wv.weight", "wv.bias", "wo.weight", "wo.bias"}));
  o.qk_norm = QKNormKind::rms;
  auto m = make_attention(kC, 0, o, false);
  EXPECT_EQ(m->parameter("q_norm.weight").shape(), (Shape{4}));
  EXPECT_EQ(m->parameter("q_norm.weight").data().to_vector<float>(), std::vector<float>(4, 1.0f));
  o.qk_norm = QKNormKind::l2, o.train_len = 16;
  m = make_attention(kC, 0, o, false);
  EXPECT_FLOAT_EQ(m->parameter("qk_scale").data().item<float>(), std::log2(16.0f * 16 - 16));  // Henry et al. init
  o.qk_norm = QKNormKind::none, o.sink_kv = true, o.out_gate = true, o.score = ScoreKind::relu;
  m = make_attention(kC, 0, o, false);
  EXPECT_EQ(m->parameter("sink_k").shape(), (Shape{2, 4}));
  EXPECT_EQ(m->parameter("sink_v").shape(), (Shape{2, 4}));
  EXPECT_EQ(m->parameter("wg.weight").shape(), (Shape{16, kC}));
  EXPECT_TRUE(has(*m, "out_norm.weight"));
}

TEST(AttentionProperties, OptionErrorsNameTheField) {
  auto error_of = [](AttnOptions o) {
    try {
      resolve_attn_options(o, kC, 4);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto expect = [&](AttnOptions o, const std::string& part) {
    std::string e = error_of(o);
    EXPECT_NE(e.find(part), std::string::npos) << "'" << e << "' lacks '" << part << "'";
  };
  AttnOptions o = base();
  o.mask = MaskKind::sinks;
  expect(o, "window");
  o = base(), o.mask = MaskKind::strided;
  expect(o, "stride");
  o = base(), o.mask = MaskKind::fixed, o.stride = 2, o.summary = 3;
  expect(o, "summary");
  o = base(), o.mask = MaskKind::moba, o.moba_block = 2;
  expect(o, "moba_topk");
  o = base(), o.score = ScoreKind::sigmoid, o.train_len = 0;
  expect(o, "train_len");
  o = base(), o.conv = 5;
  expect(o, "conv");
  o = base(), o.rope_scale = 0;
  expect(o, "rope_scale");
  o = base(3, 1), o.kind = "diff";
  expect(o, "even");
  o = base(), o.kind = "diff", o.score = ScoreKind::relu;
  expect(o, "not implemented");
  o = base(), o.kind = "moh", o.moh_shared = 1, o.moh_topk = 4;
  expect(o, "moh_topk");
  EXPECT_EQ(parse_score_kind("softplus"), ScoreKind::softplus);
  EXPECT_EQ(parse_mask_kind("moba"), MaskKind::moba);
  EXPECT_EQ(parse_qk_norm_kind("l2"), QKNormKind::l2);
  EXPECT_THROW(parse_score_kind("relu2"), Error);
  EXPECT_THROW(parse_mask_kind("dilated"), Error);
}
