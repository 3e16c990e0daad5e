// SGD with momentum, dampening, nesterov and weight decay against PyTorch's rule.
#include <gtest/gtest.h>

#include "optim/sgd.h"

using namespace attnlab;

namespace {
double sgd_ref(double p, const std::vector<double>& grads, double lr, double mom, double damp, double wd,
               bool nesterov) {
  double buf = 0;
  for (size_t t = 0; t < grads.size(); ++t) {
    double d = grads[t] + wd * p;
    if (mom != 0) {
      buf = t == 0 ? d : mom * buf + (1 - damp) * d;
      d = nesterov ? d + mom * buf : buf;
    }
    p -= lr * d;
  }
  return p;
}
}  // namespace

TEST(SGD, MomentumMatchesPyTorchRule) {
  struct Case {
    double mom, damp, wd;
    bool nesterov;
  };
  for (Case c : {Case{0.0, 0.0, 0.0, false}, Case{0.9, 0.0, 0.0, false}, Case{0.9, 0.1, 0.01, false},
                 Case{0.8, 0.0, 0.1, true}}) {
    std::vector<double> p0 = {1.0, -2.0, 0.5, 4.0};
    Var w(Tensor::from(p0, {2, 2}), true);
    SGDOptions o;
    o.lr = 0.1;
    o.momentum = c.mom;
    o.dampening = c.damp;
    o.weight_decay = c.wd;
    o.nesterov = c.nesterov;
    SGD opt(NamedVars{{"fc.weight", w}}, o);
    EXPECT_EQ(opt.state_names().size(), c.mom != 0 ? 1u : 0u);
    std::vector<std::vector<double>> grads = {{1, 0, -1, 2}, {0.5, 0.5, 0.5, 0.5}, {-1, 2, 0, 1}, {0, 0, 0, 0}};
    for (auto& g : grads) {
      w.grad() = Tensor::from(g, {2, 2});
      opt.step();
    }
    auto got = w.data().to_vector<double>();
    for (size_t i = 0; i < 4; ++i) {
      std::vector<double> gi;
      for (auto& g : grads) gi.push_back(g[i]);
      EXPECT_NEAR(got[i], sgd_ref(p0[i], gi, 0.1, c.mom, c.damp, c.wd, c.nesterov), 1e-14)
          << "momentum " << c.mom << " nesterov " << c.nesterov;
    }
  }
}

TEST(SGD, Float32AndNoDecayOnVectors) {
  Var v(Tensor::from<float>({1.0f, 2.0f}), true);
  SGDOptions o;
  o.lr = 0.5;
  o.momentum = 0.9;
  o.weight_decay = 1.0;  // skipped: a 1-D parameter
  SGD opt(NamedVars{{"ln_f.bias", v}}, o);
  v.grad() = Tensor::from<float>({1.0f, -1.0f});
  opt.step();
  EXPECT_EQ(v.data().to_vector<float>(), (std::vector<float>{0.5f, 2.5f}));
  EXPECT_THROW(SGD(NamedVars{{"x", Var(Tensor::zeros({1}), true)}}, SGDOptions{0.1, 0.0, 0.0, 0.0, true}), Error);
}
