// Linear, Embedding, norms, MLPs, dropout: values and float64 gradchecks.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "core/ops.h"
#include "layers/dropout.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/mlp.h"
#include "layers/norm.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::test_util;

TEST(Linear, MatchesXWtPlusB) {
  Linear lin(3, 2);
  lin.to(DType::f64);
  randomize(lin, 1);
  Tensor x = randn({2, 4, 3}, 2);
  Tensor y = lin.forward(Var(x)).data();
  EXPECT_EQ(y.shape(), (Shape{2, 4, 2}));
  auto W = lin.weight().data().to_vector<double>(), b = lin.bias().data().to_vector<double>();
  auto X = x.to_vector<double>(), Y = y.to_vector<double>();
  for (int r = 0; r < 8; ++r)
    for (int o = 0; o < 2; ++o) {
      double want = b[o];
      for (int i = 0; i < 3; ++i) want += X[r * 3 + i] * W[o * 3 + i];
      EXPECT_NEAR(Y[r * 2 + o], want, 1e-12);
    }
}

TEST(Linear, Gradcheck) {
  for (bool bias : {true, false}) {
    Linear lin(3, 5, bias);
    lin.to(DType::f64);
    randomize(lin, 3);
    std::vector<std::string> names{"weight"};
    if (bias) names.push_back("bias");
    auto r = gradcheck_module(lin, names, {randn({2, 3, 3}, 4)}, [&](auto& v) { return lin.forward(v[0]); });
    EXPECT_TRUE(r.ok) << "bias=" << bias << ": " << r.message;
  }
}

TEST(Embedding, LooksUpRows) {
  Embedding emb(5, 3);
  randomize(emb, 5);
  Tensor ids = Tensor::from<int64_t>({4, 0, 4}, {1, 3});
  Tensor y = emb.forward(ids).data();
  EXPECT_EQ(y.shape(), (Shape{1, 3, 3}));
  auto W = emb.weight().data().to_vector<float>(), Y = y.to_vector<float>();
  for (int j = 0; j < 3; ++j) {
    EXPECT_EQ(Y[j], W[12 + j]);
    EXPECT_EQ(Y[3 + j], W[j]);
  }
}

TEST(Norms, LayerNormNormalises) {
  LayerNorm ln(6);
  ln.to(DType::f64);
  Tensor y = ln.forward(Var(randn({4, 6}, 6, 3.0))).data();
  auto Y = y.to_vector<double>();
  for (int r = 0; r < 4; ++r) {
    double mean = 0, sq = 0;
    for (int j = 0; j < 6; ++j) mean += Y[r * 6 + j] / 6;
    for (int j = 0; j < 6; ++j) sq += (Y[r * 6 + j] - mean) * (Y[r * 6 + j] - mean) / 6;
    EXPECT_NEAR(mean, 0.0, 1e-12);
    EXPECT_NEAR(sq, 1.0, 1e-4);
  }
}

TEST(Norms, RMSNormHasUnitRms) {
  RMSNorm n(5, 1e-8);
  n.to(DType::f64);
  auto Y = n.forward(Var(randn({3, 5}, 7, 2.0))).data().to_vector<double>();
  for (int r = 0; r < 3; ++r) {
    double sq = 0;
    for (int j = 0; j < 5; ++j) sq += Y[r * 5 + j] * Y[r * 5 + j] / 5;
    EXPECT_NEAR(sq, 1.0, 1e-6);
  }
}

TEST(Norms, Gradcheck) {
  for (bool bias : {true, false}) {
    LayerNorm ln(5, 1e-5, bias);
    ln.to(DType::f64);
    randomize(ln, 8);
    std::vector<std::string> names{"weight"};
    if (bias) names.push_back("bias");
    auto r = gradcheck_module(ln, names, {randn({2, 3, 5}, 9)}, [&](auto& v) { return ln.forward(v[0]); });
    EXPECT_TRUE(r.ok) << "layernorm bias=" << bias << ": " << r.message;
  }
  RMSNorm rms(5);
  rms.to(DType::f64);
  randomize(rms, 10);
  auto r = gradcheck_module(rms, {"weight"}, {randn({2, 3, 5}, 11)}, [&](auto& v) { return rms.forward(v[0]); });
  EXPECT_TRUE(r.ok) << "rmsnorm: " << r.message;
  EXPECT_EQ(make_norm(NormKind::layer, 4, 1e-5, false)->num_parameters(), 4);
  EXPECT_EQ(parse_norm_kind("rms"), NormKind::rms);
  EXPECT_THROW(parse_norm_kind("batch"), Error);
}

TEST(MLP, EveryKindGradchecks) {
  for (MLPKind kind : {MLPKind::gelu, MLPKind::relu2, MLPKind::swiglu}) {
    MLP mlp(kind, 4, 6, true);
    mlp.to(DType::f64);
    randomize(mlp, 12);
    std::vector<std::string> names;
    for (auto& [n, p] : mlp.named_parameters()) names.push_back(n);
    auto r = gradcheck_module(mlp, names, {randn({2, 3, 4}, 13)}, [&](auto& v) { return mlp.forward(v[0]); });
    EXPECT_TRUE(r.ok) << mlp_kind_name(kind) << ": " << r.message;
  }
}

TEST(MLP, ParameterNames) {
  auto names = [](const MLP& m) {
    std::vector<std::string> out;
    for (auto& [n, p] : m.named_parameters()) out.push_back(n);
    return out;
  };
  EXPECT_EQ(names(MLP(MLPKind::gelu, 4, 8, false)), (std::vector<std::string>{"fc.weight", "proj.weight"}));
  EXPECT_EQ(names(MLP(MLPKind::swiglu, 4, 8, false)),
            (std::vector<std::string>{"gate.weight", "up.weight", "down.weight"}));
  EXPECT_EQ(parse_mlp_kind("relu2"), MLPKind::relu2);
  EXPECT_THROW(parse_mlp_kind("geglu"), Error);
}

TEST(MLP, SwiGLUValue) {
  MLP mlp(MLPKind::swiglu, 2, 3, false);
  mlp.to(DType::f64);
  randomize(mlp, 14);
  Tensor x = randn({1, 2}, 15);
  Tensor gate = ops::matmul(x, mlp.parameter("gate.weight").data(), false, true);
  Tensor up = ops::matmul(x, mlp.parameter("up.weight").data(), false, true);
  Tensor want = ops::matmul(ops::mul(ops::unary(UnaryOp::silu, gate), up), mlp.parameter("down.weight").data(),
                            false, true);
  EXPECT_LT(max_abs_diff(mlp.forward(Var(x)).data(), want), 1e-12);
}

TEST(Dropout, IdentityInEvalOrZeroP) {
  auto gen = std::make_shared<Generator>(1);
  Dropout d(0.5, gen);
  Var x(randn({4, 8}, 16));
  d.eval();
  EXPECT_EQ(d.forward(x).data().raw_data(), x.data().raw_data());
  Dropout zero(0.0, nullptr);
  EXPECT_EQ(zero.forward(x).data().raw_data(), x.data().raw_data());
  EXPECT_THROW(Dropout(1.0, gen), Error);
}

TEST(Dropout, MaskIsScaledAndDeterministic) {
  const double p = 0.25;
  auto run = [&](uint64_t seed, int steps) {
    auto gen = std::make_shared<Generator>(seed);
    Dropout d(p, gen);
    Tensor out;
    for (int i = 0; i < steps; ++i) out = d.forward(Var(Tensor::ones({100, 100}, DType::f64))).data();
    return out.to_vector<double>();
  };
  auto a = run(7, 1), b = run(7, 1), c = run(7, 2), e = run(8, 1);
  EXPECT_EQ(a, b);  // same seed, same step: same mask
  EXPECT_NE(a, c);  // the next step draws a new mask
  EXPECT_NE(a, e);
  int64_t kept = 0;
  for (double v : a) {
    EXPECT_TRUE(v == 0.0 || std::abs(v - 1.0 / (1.0 - p)) < 1e-12) << v;
    kept += v != 0.0;
  }
  EXPECT_NEAR(static_cast<double>(kept) / 10000.0, 1.0 - p, 0.02);
}

TEST(Dropout, GradientUsesTheSameMask) {
  auto gen = std::make_shared<Generator>(3);
  Dropout d(0.5, gen);
  Var x(randn({3, 7}, 17), true);
  Var y = d.forward(x);
  ag::sum_all(y).backward();
  auto Y = y.data().to_vector<double>(), X = x.data().to_vector<double>(), G = x.grad().to_vector<double>();
  for (size_t i = 0; i < Y.size(); ++i) EXPECT_NEAR(Y[i], X[i] * G[i], 1e-12);
}

TEST(GradcheckModule, DetectsAMissingParameterGradient) {
  Linear lin(3, 2, false);
  lin.to(DType::f64);
  randomize(lin, 18);
  // The weight is read detached: numeric gradient non-zero, analytic none.
  auto r = gradcheck_module(lin, {"weight"}, {randn({2, 3}, 19)},
                            [&](auto& v) { return ag::matmul(v[0], Var(lin.weight().data()), false, true); });
  EXPECT_FALSE(r.ok);
}
