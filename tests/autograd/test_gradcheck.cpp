// Every differentiable function against central differences in float64, on
// shapes with odd sizes and size-1 dims.
#include <gtest/gtest.h>

#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/ops.h"

using namespace attnlab;

namespace {

Tensor randn(const Shape& shape, uint64_t seed, double scale = 1.0) {
  Generator gen(seed);
  return Tensor::empty(shape, DType::f64).normal_(gen, 0.0, scale);
}

// Values bounded away from 0 (for log, sqrt, div, and the kinks of relu/abs).
Tensor positive(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return Tensor::empty(shape, DType::f64).uniform_(gen, 0.5, 2.0);
}

Tensor away_from_zero(const Shape& shape, uint64_t seed) {
  Tensor t = positive(shape, seed);
  Generator gen(seed + 1);
  Tensor sign = Tensor::empty(shape, DType::f64).uniform_(gen, -1.0, 1.0);
  double* p = t.data<double>();
  const double* s = sign.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = s[i] < 0 ? -p[i] : p[i];
  return t;
}

void expect_ok(const GradcheckResult& r) { EXPECT_TRUE(r.ok) << r.message; }

const std::vector<Shape> kShapes = {{1}, {7}, {3, 5}, {2, 1, 4}, {1, 3, 1}};

}  // namespace

TEST(Gradcheck, Matmul) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Shape sa = ta ? Shape{2, 5, 3} : Shape{2, 3, 5};
      Shape sb = tb ? Shape{2, 4, 5} : Shape{2, 5, 4};
      expect_ok(gradcheck([&](auto& v) { return ag::matmul(v[0], v[1], ta, tb); },
                          {randn(sa, 1), randn(sb, 2)}));
    }
}

TEST(Gradcheck, MatmulSharedRightHandSide) {
  for (bool tb : {false, true}) {
    Shape sb = tb ? Shape{4, 5} : Shape{5, 4};
    expect_ok(gradcheck([&](auto& v) { return ag::matmul(v[0], v[1], false, tb); },
                        {randn({3, 1, 5}, 3), randn(sb, 4)}));
  }
}

TEST(Gradcheck, Unary) {
  for (UnaryOp op : {UnaryOp::gelu_tanh, UnaryOp::relu, UnaryOp::relu2, UnaryOp::silu, UnaryOp::sigmoid,
                     UnaryOp::softplus, UnaryOp::tanh, UnaryOp::exp, UnaryOp::log, UnaryOp::square,
                     UnaryOp::neg, UnaryOp::sqrt, UnaryOp::abs}) {
    bool needs_positive = op == UnaryOp::log || op == UnaryOp::sqrt;
    for (const Shape& s : kShapes) {
      Tensor x = needs_positive ? positive(s, 5) : away_from_zero(s, 5);
      auto r = gradcheck([&](auto& v) { return ag::unary(op, v[0]); }, {x});
      EXPECT_TRUE(r.ok) << unary_name(op) << " " << shape_str(s) << ": " << r.message;
    }
  }
}

TEST(Gradcheck, BinaryWithBroadcasting) {
  std::vector<std::pair<Shape, Shape>> pairs = {
      {{3, 4}, {3, 4}}, {{2, 3, 4}, {4}}, {{2, 3, 4}, {3, 1}}, {{1, 4}, {3, 1}}, {{5}, {}}, {{2, 1, 3}, {1, 4, 1}}};
  for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div})
    for (auto& [sa, sb] : pairs) {
      auto r = gradcheck([&](auto& v) { return ag::binary(op, v[0], v[1]); },
                         {randn(sa, 7), away_from_zero(sb, 8)});
      EXPECT_TRUE(r.ok) << binary_name(op) << " " << shape_str(sa) << " " << shape_str(sb) << ": " << r.message;
    }
}

TEST(Gradcheck, ScaleAndAddScalar) {
  expect_ok(gradcheck([](auto& v) { return ag::scale(v[0], -2.5); }, {randn({3, 5}, 9)}));
  expect_ok(gradcheck([](auto& v) { return ag::add_scalar(v[0], 1.5); }, {randn({3, 5}, 10)}));
}

TEST(Gradcheck, Reductions) {
  for (const Shape& s : kShapes) {
    expect_ok(gradcheck([](auto& v) { return ag::sum_last(v[0]); }, {randn(s, 11)}));
    expect_ok(gradcheck([](auto& v) { return ag::mean_last(v[0]); }, {randn(s, 12)}));
    expect_ok(gradcheck([](auto& v) { return ag::max_last(v[0]); }, {randn(s, 13)}));
    expect_ok(gradcheck([](auto& v) { return ag::sum_all(v[0]); }, {randn(s, 14)}));
    expect_ok(gradcheck([](auto& v) { return ag::mean_all(v[0]); }, {randn(s, 15)}));
    expect_ok(gradcheck([](auto& v) { return ag::max_all(v[0]); }, {randn(s, 16)}));
  }
}

TEST(Gradcheck, Softmax) {
  for (const Shape& s : kShapes) {
    expect_ok(gradcheck([](auto& v) { return ag::softmax(v[0]); }, {randn(s, 17)}));
    expect_ok(gradcheck([](auto& v) { return ag::log_softmax(v[0]); }, {randn(s, 18)}));
  }
}

TEST(Gradcheck, Norms) {
  for (Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 1, 5}}) {
    Shape w{s.back()};
    expect_ok(gradcheck([](auto& v) { return ag::layer_norm(v[0], v[1], v[2], 1e-5); },
                        {randn(s, 19), randn(w, 20), randn(w, 21)}));
    expect_ok(gradcheck([](auto& v) { return ag::layer_norm(v[0], v[1], Var(), 1e-5); },
                        {randn(s, 22), randn(w, 23)}));
    expect_ok(gradcheck([](auto& v) { return ag::rms_norm(v[0], v[1], 1e-6); },
                        {randn(s, 24), randn(w, 25)}));
  }
}

TEST(Gradcheck, Embedding) {
  Tensor ids = Tensor::from<int64_t>({0, 3, 3, 1, 4, 0}, {2, 3});
  expect_ok(gradcheck([&](auto& v) { return ag::embedding(v[0], ids); }, {randn({5, 3}, 26)}));
  Tensor ids32 = Tensor::from<int32_t>({2}, {1});
  expect_ok(gradcheck([&](auto& v) { return ag::embedding(v[0], ids32); }, {randn({3, 1}, 27)}));
}

TEST(Gradcheck, CrossEntropy) {
  Tensor targets = Tensor::from<int64_t>({2, 0, -100, 4, 1});
  expect_ok(gradcheck([&](auto& v) { return ag::cross_entropy(v[0], targets); }, {randn({5, 6}, 28)}));
  Tensor one = Tensor::from<int32_t>({0});
  expect_ok(gradcheck([&](auto& v) { return ag::cross_entropy(v[0], one); }, {randn({1, 1}, 29)}));
  // Upstream scale other than 1.
  expect_ok(gradcheck([&](auto& v) { return ag::scale(ag::cross_entropy(v[0], targets), 3.0); },
                      {randn({5, 6}, 30)}));
}

TEST(Gradcheck, Layout) {
  expect_ok(gradcheck([](auto& v) { return ag::reshape(v[0], {5, 3}); }, {randn({3, 5}, 31)}));
  expect_ok(gradcheck([](auto& v) { return ag::transpose(v[0], 0, 2); }, {randn({2, 3, 4}, 32)}));
  expect_ok(gradcheck([](auto& v) { return ag::transpose(v[0], -1, -2); }, {randn({2, 1, 3, 4}, 33)}));
  expect_ok(gradcheck([](auto& v) { return ag::concat({v[0], v[1], v[2]}, 1); },
                      {randn({2, 1, 3}, 34), randn({2, 4, 3}, 35), randn({2, 2, 3}, 36)}));
  expect_ok(gradcheck([](auto& v) { return ag::narrow(v[0], -1, 1, 3); }, {randn({3, 5}, 37)}));
  expect_ok(gradcheck(
      [](auto& v) {
        auto parts = ag::split(v[0], {1, 2, 2}, 0);
        return ag::add(ag::mul(parts[0], parts[0]), ag::sub(parts[2], ag::scale(parts[1], 2.0)));
      },
      {randn({5, 3}, 38)}));
}

TEST(Gradcheck, Masking) {
  Tensor mask = Tensor::from<int32_t>({0, 1, 0, 0, 1, 1}, {2, 3});
  expect_ok(gradcheck([&](auto& v) { return ag::masked_fill(v[0], mask, -5.0); }, {randn({4, 2, 3}, 39)}));
  Tensor cond = Tensor::from<float>({1, 0, 1});
  expect_ok(gradcheck([&](auto& v) { return ag::where(cond, v[0], v[1]); }, {randn({2, 3}, 40), randn({1}, 41)}));
  for (int64_t dim : {0, 1, -1})
    expect_ok(gradcheck([&](auto& v) { return ag::cumsum(v[0], dim); }, {randn({3, 4, 2}, 42)}));
}

TEST(Gradcheck, DetectsAWrongGradient) {
  // A function whose backward is deliberately wrong must fail the check.
  auto wrong = [](const std::vector<Var>& v) {
    Tensor x = v[0].data();
    return make_result(ops::unary(UnaryOp::square, x), "wrong_square", {v[0]},
                       [=](const Tensor& g) { return std::vector<Tensor>{ops::mul(g, x)}; });  // missing the 2
  };
  EXPECT_FALSE(gradcheck(wrong, {randn({4}, 43)}).ok);
}
