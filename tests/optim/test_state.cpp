// Optimizer state: names, round trip through state()/load_state(), errors.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>

#include "optim/adamw.h"
#include "optim/sgd.h"

using namespace attnlab;

namespace {

struct Params {
  Var w{Tensor::from<double>({0.1, 0.2, -0.3, 0.4, 0.5, -0.6}, {2, 3}), true};
  Var b{Tensor::from<double>({1.0, -1.0}), true};
  NamedVars named() const { return {{"fc.weight", w}, {"fc.bias", b}}; }
  Params clone() const {
    Params p;
    p.w.data().copy_(w.data());
    p.b.data().copy_(b.data());
    return p;
  }
};

// A deterministic gradient that depends on the step and the parameter.
void fake_backward(Params& p, int step) {
  for (Var* v : {&p.w, &p.b}) {
    auto x = v->data().to_vector<double>();
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(3.0 * x[i] + step) + 0.1 * static_cast<double>(i);
    v->grad() = Tensor::from(x, v->shape());
  }
}

template <class Opt, class Options>
void expect_round_trip(const Options& o) {
  Params a;
  Opt opt_a(a.named(), o);
  for (int s = 0; s < 3; ++s) {
    fake_backward(a, s);
    opt_a.step();
  }
  // Snapshot (copies, as a checkpoint would), then resume in a fresh optimizer.
  Optimizer::State saved;
  for (auto& [name, m] : opt_a.state())
    for (auto& [k, t] : m) saved[name][k] = t.clone();
  Params b = a.clone();
  Opt opt_b(b.named(), o);
  opt_b.load_state(saved, opt_a.step_count());
  EXPECT_EQ(opt_b.step_count(), 3);
  for (int s = 3; s < 6; ++s) {
    fake_backward(a, s);
    fake_backward(b, s);
    opt_a.step();
    opt_b.step();
  }
  EXPECT_EQ(a.w.data().to_vector<double>(), b.w.data().to_vector<double>());
  EXPECT_EQ(a.b.data().to_vector<double>(), b.b.data().to_vector<double>());
}

}  // namespace

TEST(OptimizerState, NamesAndShapes) {
  Params p;
  AdamW adam(p.named(), AdamWOptions{});
  auto st = adam.state();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st.at("fc.weight").at("exp_avg").shape(), (Shape{2, 3}));
  EXPECT_EQ(st.at("fc.bias").at("exp_avg_sq").shape(), (Shape{2}));
  SGDOptions so;
  so.momentum = 0.9;
  SGD sgd(p.named(), so);
  EXPECT_EQ(sgd.state().at("fc.weight").count("momentum_buffer"), 1u);
}

TEST(OptimizerState, AdamWRoundTripContinuesIdentically) {
  AdamWOptions o;
  o.lr = 0.05;
  o.weight_decay = 0.1;
  expect_round_trip<AdamW>(o);
}

TEST(OptimizerState, SGDRoundTripContinuesIdentically) {
  SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  o.dampening = 0.3;
  expect_round_trip<SGD>(o);
}

TEST(OptimizerState, LoadStateErrors) {
  Params p;
  AdamW opt(p.named(), AdamWOptions{});
  auto good = opt.state();
  auto missing = good;
  missing.erase("fc.bias");
  EXPECT_THROW(opt.load_state(missing, 1), Error);
  auto no_key = good;
  no_key["fc.bias"].erase("exp_avg");
  EXPECT_THROW(opt.load_state(no_key, 1), Error);
  auto extra = good;
  extra["fc.gain"]["exp_avg"] = Tensor::zeros({2});
  EXPECT_THROW(opt.load_state(extra, 1), Error);
  auto bad_shape = good;
  bad_shape["fc.weight"]["exp_avg"] = Tensor::zeros({3, 2});
  try {
    opt.load_state(bad_shape, 1);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("fc.weight/exp_avg"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 2]"), std::string::npos) << m;
  }
  EXPECT_EQ(opt.step_count(), 0);  // nothing changed
  // f32 checkpoint into f64 state converts.
  auto f32 = good;
  for (auto& [n, m] : f32)
    for (auto& [k, t] : m) t = Tensor::ones(t.shape(), DType::f32);
  opt.load_state(f32, 7);
  EXPECT_EQ(opt.step_count(), 7);
  EXPECT_EQ(opt.state().at("fc.bias").at("exp_avg").to_vector<double>(), (std::vector<double>{1.0, 1.0}));
}
