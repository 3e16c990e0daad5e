// Differential attention and mixture-of-heads: loop references, the lambda = 0
// reduction, lambda_init's depth schedule, head layout and parameter counts,
// MoH's gates and load-balance loss, and the loss the model adds.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "core/ops.h"
#include "layers/attention/diff_attention.h"
#include "layers/attention/moh.h"
#include "layers/attention_testing.h"
#include "layers/gpt.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::attn_test;
using test_util::max_abs_diff;

namespace {

// Differential attention by loops (pos = nope, causal): Ye et al., Sec. 2.1.
// Differential head i: maps q_{2i}, q_{2i+1} against k_{2i/G}, k_{(2i+1)/G};
// values: head i/G of width 2D.
Tensor diff_reference(const DiffAttention& a, const Tensor& x) {
  const AttnOptions& o = a.options();
  const int64_t B = x.size(0), T = x.size(1), H = o.n_head, Hkv = o.n_kv_head, D = o.d_head, G = H / Hkv;
  auto X = x.to_vector<double>();
  auto q = linear(X, B * T, a, "wq", kC, H * D), k = linear(X, B * T, a, "wk", kC, Hkv * D),
       v = linear(X, B * T, a, "wv", kC, Hkv * D);
  auto dotp = [](const std::vector<double>& u, const std::vector<double>& w) {
    double s = 0;
    for (size_t i = 0; i < u.size(); ++i) s += u[i] * w[i];
    return s;
  };
  const double lambda = std::exp(dotp(param(a, "lambda_q1"), param(a, "lambda_k1"))) -
                        std::exp(dotp(param(a, "lambda_q2"), param(a, "lambda_k2"))) + o.diff_lambda_init;
  auto subln = param(a, "subln.weight");
  std::vector<double> y(static_cast<size_t>(B * T * H * D), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < H / 2; ++i)
      for (int64_t t = 0; t < T; ++t) {
        std::vector<double> w[2];
        for (int m = 0; m < 2; ++m) {
          const int64_t map = 2 * i + m, kv = map / G;
          double mx = -INFINITY, z = 0;
          for (int64_t j = 0; j <= t; ++j) {
            double s = 0;
            for (int64_t d = 0; d < D; ++d) s += q[((b * T + t) * H + map) * D + d] * k[((b * T + j) * Hkv + kv) * D + d];
            w[m].push_back(s / std::sqrt(static_cast<double>(D)));
            mx = std::max(mx, w[m].back());
          }
          for (double& e : w[m]) z += (e = std::exp(e - mx));
          for (double& e : w[m]) e /= z;
        }
        const int64_t vh = i / G;  // value head of width 2D: kv heads 2vh, 2vh+1 side by side
        std::vector<double> out(static_cast<size_t>(2 * D), 0.0);
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t d = 0; d < 2 * D; ++d)
            out[d] += (w[0][j] - lambda * w[1][j]) * v[(b * T + j) * Hkv * D + vh * 2 * D + d];
        double ms = 0;
        for (double e : out) ms += e * e / (2 * D);
        for (int64_t d = 0; d < 2 * D; ++d)
          y[(b * T + t) * H * D + i * 2 * D + d] = (1 - o.diff_lambda_init) * out[d] / std::sqrt(ms + 1e-5) * subln[d];
      }
  return Tensor::from(linear(y, B * T, a, "wo", H * D, kC), {B, T, kC});
}

AttnOptions diff_opts(int64_t h, int64_t hkv) {
  AttnOptions o = base(h, hkv, PosKind::nope);
  o.kind = "diff";
  return o;
}

}  // namespace

TEST(DiffAttention, MatchesTheLoopReference) {
  uint64_t seed = 1;
  for (auto [h, hkv] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 2}, {8, 2}, {2, 2}}) {
    AttnOptions o = diff_opts(h, hkv);
    o.diff_lambda_init = 0.35;
    auto a = make(o, seed++);
    Tensor x = randn({2, 6, kC}, seed++);
    EXPECT_LT(max_abs_diff(a->forward(Var(x)).data(), diff_reference(dynamic_cast<DiffAttention&>(*a), x)), 1e-12)
        << h << " heads, " << hkv << " kv heads";
  }
}

TEST(DiffAttention, LambdaZeroIsSoftmaxOfTheFirstMaps) {
  // With lambda_init = 0 and lq1 = lq2, lk1 = lk2, lambda = 0 and (1 - lambda_init)
  // = 1: every differential head is softmax(Q1 K1^T / sqrt(d)) V through its
  // RMSNorm (subln): the even query maps against their keys, values of width 2d.
  // Equal to the loop reference with the second map dropped, and the odd maps'
  // query weights have no effect.
  AttnOptions o = diff_opts(4, 2);
  o.diff_lambda_init = 0.0;
  auto a = make(o, 10);
  auto& d = dynamic_cast<DiffAttention&>(*a);
  a->parameter("lambda_q2").data().copy_(a->parameter("lambda_q1").data());
  a->parameter("lambda_k2").data().copy_(a->parameter("lambda_k1").data());
  EXPECT_EQ(d.lambda(), 0.0);
  Tensor x = randn({2, 6, kC}, 11);
  Tensor y = a->forward(Var(x)).data();
  EXPECT_LT(max_abs_diff(y, diff_reference(d, x)), 1e-12);
  // Scramble the rows of wq that make the odd (second) maps: nothing changes.
  Tensor wq = a->parameter("wq.weight").data();
  double* p = wq.data<double>();
  const int64_t D = 4;
  for (int64_t map = 1; map < 4; map += 2)
    for (int64_t r = map * D; r < (map + 1) * D; ++r)
      for (int64_t c = 0; c < kC; ++c) p[r * kC + c] += 0.37 * static_cast<double>(r - c);
  EXPECT_LT(max_abs_diff(a->forward(Var(x)).data(), y), 1e-14);
  // While the even maps' rows do matter.
  for (int64_t c = 0; c < kC; ++c) p[c] += 0.5;
  EXPECT_GT(max_abs_diff(a->forward(Var(x)).data(), y), 1e-6);
}

TEST(DiffAttention, LambdaInitFollowsDepth) {
  for (int64_t l : {0, 1, 2, 7}) {
    AttnOptions o = diff_opts(4, 4);
    o.layer = l;  // 0-based; the paper's l is 1-based
    EXPECT_NEAR(resolve_attn_options(o, kC, 4).diff_lambda_init, 0.8 - 0.6 * std::exp(-0.3 * l), 1e-15) << l;
  }
  AttnOptions o = diff_opts(4, 4);
  o.diff_lambda_init = 0.5;
  EXPECT_EQ(resolve_attn_options(o, kC, 4).diff_lambda_init, 0.5);
  // The model numbers its layers.
  GPTConfig c;
  c.vocab_size = 11, c.n_layer = 3, c.n_head = 4, c.d_model = 16, c.block_size = 8;
  c.layers = {diff_opts(4, 4)};
  c.layers[0].d_head = 0, c.layers[0].train_len = 0;  // 0: the model fills in block_size
  EXPECT_NEAR(c.attn_options(2).diff_lambda_init, 0.8 - 0.6 * std::exp(-0.6), 1e-15);
  EXPECT_EQ(c.attn_options(2).train_len, 8);
}

TEST(DiffAttention, LambdaReparameterisation) {
  AttnOptions o = diff_opts(4, 4);
  o.diff_lambda_init = 0.2;
  auto a = make(o, 20);
  auto dot = [&](const char* x, const char* y) {
    auto u = param(*a, x), w = param(*a, y);
    double s = 0;
    for (size_t i = 0; i < u.size(); ++i) s += u[i] * w[i];
    return s;
  };
  double want = std::exp(dot("lambda_q1", "lambda_k1")) - std::exp(dot("lambda_q2", "lambda_k2")) + 0.2;
  EXPECT_NEAR(dynamic_cast<DiffAttention&>(*a).lambda(), want, 1e-14);
}

TEST(DiffAttention, HeadLayoutAndParameterCount) {
  // d_model 16, n_head 4: d = 4; Q, K: 4 maps of 4; V: 2 heads of 8 -> as many
  // projection weights as 4-head MHA, plus 4 lambda vectors [d] and subln [2d].
  AttnOptions o;
  o.kind = "diff";
  auto diff = make_attention(16, 4, o, false);
  AttnOptions m;
  auto mha = make_attention(16, 4, m, false);
  EXPECT_EQ(diff->num_parameters(), mha->num_parameters() + 4 * 4 + 8);
  EXPECT_EQ(diff->parameter("wv.weight").shape(), (Shape{16, 16}));
  EXPECT_EQ(diff->parameter("subln.weight").shape(), (Shape{8}));
  EXPECT_EQ(diff->parameter("lambda_q1").shape(), (Shape{4}));
  // GPT init draws lambda ~ N(0, 0.1): small, non-zero.
  GPTConfig c;
  c.vocab_size = 11, c.n_layer = 1, c.n_head = 4, c.d_model = 16, c.block_size = 8;
  c.layers = {o};
  GPT g(c, 3);
  auto lq = g.parameter("blocks.0.attn.lambda_q1").data().to_vector<float>();
  double ss = 0;
  for (float v : lq) ss += v * v;
  EXPECT_GT(ss, 0.0);
  EXPECT_LT(ss, 4 * 0.5 * 0.5);
}

TEST(MoH, OutputIsTheGateWeightedSumOfHeads) {
  // MoH(x) = sum_h g_h(x) head_h(x) W_O^h (no bias): each head's term is a plain
  // module with the other heads' columns of W_O zeroed.
  AttnOptions o = base(4, 2);
  o.kind = "moh", o.moh_shared = 1, o.moh_topk = 2;
  auto moh = make(o, 30, false);
  Tensor x = randn({2, 5, kC}, 31);
  Tensor g = dynamic_cast<MoHAttention&>(*moh).head_gates(Var(x));  // [B, T, H]
  ASSERT_EQ(g.shape(), (Shape{2, 5, 4}));
  auto gv = g.to_vector<double>();
  AttnOptions plain = base(4, 2);
  std::vector<double> want(static_cast<size_t>(2 * 5 * kC), 0.0);
  const int64_t D = 4;
  for (int64_t h = 0; h < 4; ++h) {
    auto p = make(plain, 0, false);
    auto sd = moh->state_dict();
    std::map<std::string, Tensor> mine;
    for (auto& [n, t] : p->state_dict()) mine[n] = sd.at(n).clone();
    double* wo = mine.at("wo.weight").data<double>();
    for (int64_t r = 0; r < kC; ++r)
      for (int64_t c = 0; c < 4 * D; ++c)
        if (c / D != h) wo[r * 4 * D + c] = 0;
    p->load_state_dict(mine);
    auto yh = p->forward(Var(x)).data().to_vector<double>();
    for (int64_t bt = 0; bt < 10; ++bt)
      for (int64_t c = 0; c < kC; ++c) want[bt * kC + c] += gv[bt * 4 + h] * yh[bt * kC + c];
  }
  EXPECT_LT(max_abs_diff(moh->forward(Var(x)).data(), Tensor::from(want, {2, 5, kC})), 1e-12);
}

TEST(MoH, GatesRouteTopKAndMix) {
  AttnOptions o = base(4, 2);
  o.kind = "moh", o.moh_shared = 1, o.moh_topk = 2;
  auto moh = make(o, 40);
  auto g = dynamic_cast<MoHAttention&>(*moh).head_gates(Var(randn({3, 7, kC}, 41))).to_vector<double>();
  for (int64_t r = 0; r < 21; ++r) {
    const double* row = &g[r * 4];
    int active = 0;
    double routed = 0;
    for (int h = 1; h < 4; ++h) active += row[h] > 0, routed += row[h];
    EXPECT_EQ(active, 2) << r;  // top-2 of the 3 routed heads
    // shared = 2 a1 * 1, routed sum = 2 a2 * k with a1 + a2 = 1.
    EXPECT_NEAR(row[0] / 2 + routed / (2 * 2), 1.0, 1e-12) << r;
  }
  // All heads shared: a softmax over them, scaled by their count.
  o.moh_shared = 4, o.moh_topk = 0;
  auto all = make(o, 42);
  EXPECT_EQ(names_of(*all).back(), "router_shared.weight");
  g = dynamic_cast<MoHAttention&>(*all).head_gates(Var(randn({1, 3, kC}, 43))).to_vector<double>();
  for (int r = 0; r < 3; ++r) EXPECT_NEAR(g[r * 4] + g[r * 4 + 1] + g[r * 4 + 2] + g[r * 4 + 3], 4.0, 1e-12);
  // One shared head and nothing routed: gate 1, plain multi-head attention.
  AttnOptions one = base(1, 1);
  one.kind = "moh", one.moh_shared = 1;
  auto m1 = make(one, 44);
  Tensor x = randn({2, 4, kC}, 45);
  AttnOptions p1 = base(1, 1);
  p1.impl = AttnImpl::reference;  // bit-exact against MoH's composed path
  auto p = make(p1, 0);
  p->load_state_dict(m1->state_dict());
  EXPECT_EQ(max_abs_diff(m1->forward(Var(x)).data(), p->forward(Var(x)).data()), 0.0);
}

TEST(MoH, LoadBalanceLossIsRecordedInTrainingOnly) {
  AttnOptions o = base(4, 2);
  o.kind = "moh", o.moh_shared = 1, o.moh_topk = 1;
  auto moh = make(o, 50);
  Var x(randn({2, 6, kC}, 51));
  moh->train();
  moh->forward(x);
  Var aux = moh->take_aux_losses();
  ASSERT_TRUE(aux.defined());
  EXPECT_FALSE(moh->take_aux_losses().defined());  // handed over once
  // L = h_r sum_i f_i P_i from the router's probabilities and the chosen heads.
  Tensor probs = ops::softmax(ops::matmul(x.data(), moh->parameter("router_routed.weight").data(), false, true));
  auto P = probs.to_vector<double>();
  auto g = dynamic_cast<MoHAttention&>(*moh).head_gates(x).to_vector<double>();
  double f[3] = {0, 0, 0}, pm[3] = {0, 0, 0};
  for (int r = 0; r < 12; ++r)
    for (int i = 0; i < 3; ++i) f[i] += (g[r * 4 + 1 + i] > 0) / 12.0, pm[i] += P[r * 3 + i] / 12.0;
  double want = 3 * (f[0] * pm[0] + f[1] * pm[1] + f[2] * pm[2]);
  EXPECT_NEAR(aux.data().item<double>(), want, 1e-12);
  // The loss reaches the router.
  aux.backward();
  EXPECT_GT(ops::max_all(ops::unary(UnaryOp::abs, moh->parameter("router_routed.weight").grad())).item<double>(), 0);
  moh->eval();
  moh->forward(x);
  EXPECT_FALSE(moh->take_aux_losses().defined());
}

TEST(MoH, ModelLossAddsTheWeightedAuxLoss) {
  GPTConfig c;
  c.vocab_size = 13, c.n_layer = 2, c.n_head = 4, c.d_model = 16, c.block_size = 8;
  AttnOptions o;
  o.kind = "moh", o.moh_shared = 2, o.moh_topk = 1;
  c.layers = {o};
  Tensor ids = Tensor::from(std::vector<int64_t>{1, 5, 2, 7, 3, 9, 4, 0, 12, 6}, {2, 5});
  Tensor tgt = Tensor::from(std::vector<int64_t>{5, 2, 7, 3, 9, 0, 12, 6, 1, 1}, {2, 5});
  c.aux_loss_weight = 0.0;
  GPT none(c, 1);
  c.aux_loss_weight = 0.5;
  GPT half(c, 1);
  double l0 = none.loss(ids, tgt).data().item<double>(), l5 = half.loss(ids, tgt).data().item<double>();
  none.forward(ids);
  double aux = none.take_aux_losses().data().item<double>();
  EXPECT_GT(aux, 0.0);
  EXPECT_NEAR(l5 - l0, 0.5 * aux, 1e-6);
  none.eval(), half.eval();  // evaluation loss is the cross-entropy alone
  EXPECT_EQ(none.loss(ids, tgt).data().item<double>(), half.loss(ids, tgt).data().item<double>());
}
