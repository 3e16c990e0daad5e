// AdamW against the update written out by hand, parameter groups, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "optim/adamw.h"

using namespace attnlab;

namespace {

Var param(std::vector<double> v, Shape shape, DType dtype) {
  return Var(Tensor::from(v, shape).to(dtype), true);
}

void set_grad(Var& p, std::vector<double> g) { p.grad() = Tensor::from(g, p.shape()).to(p.dtype()); }

// PyTorch's AdamW for one scalar over a sequence of gradients.
double adamw_ref(double p, const std::vector<double>& grads, double lr, double b1, double b2, double eps,
                 double wd) {
  double m = 0, v = 0;
  for (size_t t = 1; t <= grads.size(); ++t) {
    double g = grads[t - 1];
    p *= 1 - lr * wd;
    m = b1 * m + (1 - b1) * g;
    v = b2 * v + (1 - b2) * g * g;
    double mhat = m / (1 - std::pow(b1, t)), vhat = v / (1 - std::pow(b2, t));
    p -= lr * mhat / (std::sqrt(vhat) + eps);
  }
  return p;
}

}  // namespace

TEST(AdamW, MatchesHandComputedSteps) {
  for (DType dt : {DType::f64, DType::f32}) {
    std::vector<double> p0 = {0.5, -1.0, 2.0, 0.0, 3.0, -0.25};
    Var w = param(p0, {2, 3}, dt);
    AdamWOptions o;
    o.lr = 0.1;
    o.beta1 = 0.8;
    o.beta2 = 0.9;
    o.eps = 1e-3;
    o.weight_decay = 0.5;
    AdamW opt(NamedVars{{"blocks.0.fc.weight", w}}, o);
    std::vector<std::vector<double>> grads = {{0.1, -0.2, 0.3, 1.0, 0.0, -2.0}, {-0.3, 0.1, 0.0, 0.5, 1.0, 2.0},
                                              {1.0, 1.0, -1.0, 0.0, 0.2, 0.1}};
    for (auto& g : grads) {
      set_grad(w, g);
      opt.step();
    }
    EXPECT_EQ(opt.step_count(), 3);
    auto got = w.data().to_vector<double>();
    double tol = dt == DType::f64 ? 1e-14 : 1e-6;
    for (size_t i = 0; i < p0.size(); ++i) {
      std::vector<double> gi;
      for (auto& g : grads) gi.push_back(g[i]);
      EXPECT_NEAR(got[i], adamw_ref(p0[i], gi, 0.1, 0.8, 0.9, 1e-3, 0.5), tol) << dtype_name(dt) << " " << i;
    }
  }
}

TEST(AdamW, NoDecayOnVectorsAndEmbeddingsByDefault) {
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  Var mat = param({1, 1, 1, 1}, {2, 2}, DType::f64), vec = param({1, 1}, {2}, DType::f64);
  Var emb = param({1, 1, 1, 1}, {2, 2}, DType::f64), pos = param({1, 1}, {1, 2}, DType::f64);
  AdamW opt(NamedVars{{"blocks.0.attn.wq.weight", mat}, {"blocks.0.ln_1.weight", vec}, {"wte.weight", emb},
                      {"wpe.weight", pos}},
            o);
  ASSERT_EQ(opt.param_groups().size(), 2u);
  EXPECT_EQ(opt.param_groups()[0].params.size(), 1u);
  EXPECT_EQ(opt.param_groups()[0].params[0].first, "blocks.0.attn.wq.weight");
  EXPECT_EQ(opt.param_groups()[1].weight_decay, 0.0);
  // With a zero gradient only decay moves a parameter.
  for (Var* p : {&mat, &vec, &emb, &pos}) p->grad() = Tensor::zeros_like(p->data());
  opt.step();
  EXPECT_DOUBLE_EQ(mat.data().to_vector<double>()[0], 1 - 0.1 * 0.5);
  EXPECT_DOUBLE_EQ(vec.data().to_vector<double>()[0], 1.0);
  EXPECT_DOUBLE_EQ(emb.data().to_vector<double>()[0], 1.0);
  EXPECT_DOUBLE_EQ(pos.data().to_vector<double>()[0], 1.0);
}

TEST(AdamW, DecayFilterIsOverridable) {
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  o.decay_filter = [](const std::string&, const Var&) { return true; };  // decay everything
  Var vec = param({1, 1}, {2}, DType::f64);
  AdamW opt(NamedVars{{"ln_f.weight", vec}}, o);
  vec.grad() = Tensor::zeros_like(vec.data());
  opt.step();
  EXPECT_DOUBLE_EQ(vec.data().to_vector<double>()[0], 0.95);
  EXPECT_TRUE(default_decay_filter("blocks.0.mlp.fc.weight", param({1, 1, 1, 1}, {2, 2}, DType::f64)));
  EXPECT_FALSE(default_decay_filter("blocks.0.mlp.fc.bias", param({1, 1}, {2}, DType::f64)));
  EXPECT_FALSE(default_decay_filter("tok_emb.weight", param({1, 1, 1, 1}, {2, 2}, DType::f64)));
}

TEST(AdamW, ExplicitGroupsAndLrScale) {
  Var a = param({1}, {1}, DType::f64), b = param({1}, {1}, DType::f64);
  AdamWOptions o;
  o.lr = 0.1;
  AdamW opt({ParamGroup{{{"a", a}}, 0.0, 1.0}, ParamGroup{{{"b", b}}, 0.0, 0.5}}, o);
  set_grad(a, {1.0});
  set_grad(b, {1.0});
  opt.step();
  // The first Adam step moves by lr * g / (|g| + eps) ~ lr.
  EXPECT_NEAR(1 - a.data().item<double>(), 0.1, 1e-6);
  EXPECT_NEAR(1 - b.data().item<double>(), 0.05, 1e-6);
}

TEST(AdamW, SkipsParametersWithoutGradient) {
  Var a = param({1}, {1}, DType::f32), b = param({2}, {1}, DType::f32);
  AdamW opt(NamedVars{{"a", a}, {"b", b}}, AdamWOptions{});
  set_grad(a, {1.0});
  opt.step();
  EXPECT_NE(a.data().item<float>(), 1.0f);
  EXPECT_EQ(b.data().item<float>(), 2.0f);
}

TEST(AdamW, Errors) {
  Var a = param({1}, {1}, DType::f32);
  AdamWOptions bad;
  bad.beta1 = 1.0;
  EXPECT_THROW(AdamW(NamedVars{{"a", a}}, bad), Error);
  EXPECT_THROW(AdamW(NamedVars{{"a", a}, {"a", a}}, AdamWOptions{}), Error);
  Var frozen(Tensor::zeros({1}), false);
  EXPECT_THROW(AdamW(NamedVars{{"f", frozen}}, AdamWOptions{}), Error);
  AdamW opt(NamedVars{{"a", a}}, AdamWOptions{});
  a.grad() = Tensor::zeros({2});
  EXPECT_THROW(opt.step(), Error);
}
