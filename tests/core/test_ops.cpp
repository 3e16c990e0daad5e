// Every CPU op against a naive reference written here, in f32 and f64, on random
// inputs with odd sizes and size-1 dims (DESIGN principle 3).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include <omp.h>

#include "core/ops.h"
#include "core/test_helpers.h"

using namespace attnlab;
using attnlab::testing::all_close;
using attnlab::testing::randn;
using attnlab::testing::randu;
using attnlab::testing::ravel_broadcast;
using attnlab::testing::unravel;
using attnlab::testing::values;

namespace {

const DType kFloat[] = {DType::f32, DType::f64};

// Relative and absolute tolerance for results of short sums of O(1) terms.
double rtol(DType t) { return t == DType::f64 ? 1e-12 : 1e-5; }
double atol(DType t) { return t == DType::f64 ? 1e-12 : 1e-5; }

std::vector<double> unary_ref(UnaryOp op, const std::vector<double>& x) {
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double v = x[i];
    switch (op) {
      case UnaryOp::gelu_tanh:
        y[i] = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
        break;
      case UnaryOp::relu: y[i] = std::max(v, 0.0); break;
      case UnaryOp::relu2: y[i] = v > 0 ? v * v : 0.0; break;
      case UnaryOp::silu: y[i] = v / (1.0 + std::exp(-v)); break;
      case UnaryOp::sigmoid: y[i] = 1.0 / (1.0 + std::exp(-v)); break;
      case UnaryOp::softplus: y[i] = std::log1p(std::exp(v)); break;
      case UnaryOp::tanh: y[i] = std::tanh(v); break;
      case UnaryOp::exp: y[i] = std::exp(v); break;
      case UnaryOp::log: y[i] = std::log(v); break;
      case UnaryOp::square: y[i] = v * v; break;
      case UnaryOp::neg: y[i] = -v; break;
      case UnaryOp::sqrt: y[i] = std::sqrt(v); break;
      case UnaryOp::abs: y[i] = std::fabs(v); break;
    }
  }
  return y;
}

const UnaryOp kUnary[] = {UnaryOp::gelu_tanh, UnaryOp::relu, UnaryOp::relu2, UnaryOp::silu, UnaryOp::sigmoid,
                          UnaryOp::softplus,  UnaryOp::tanh, UnaryOp::exp,   UnaryOp::log,  UnaryOp::square,
                          UnaryOp::neg,       UnaryOp::sqrt, UnaryOp::abs};

bool needs_positive(UnaryOp op) { return op == UnaryOp::log || op == UnaryOp::sqrt; }

// op(a) @ op(b) over a batch, from flat row-major data.
std::vector<double> matmul_ref(const std::vector<double>& a, const std::vector<double>& b, int64_t batch,
                               int64_t m, int64_t n, int64_t k, bool ta, bool tb, bool shared_b) {
  std::vector<double> out(static_cast<size_t>(batch * m * n));
  for (int64_t bi = 0; bi < batch; ++bi) {
    const double* pa = a.data() + bi * m * k;
    const double* pb = b.data() + (shared_b ? 0 : bi * k * n);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += (ta ? pa[p * m + i] : pa[i * k + p]) * (tb ? pb[j * k + p] : pb[p * n + j]);
        out[static_cast<size_t>((bi * m + i) * n + j)] = s;
      }
  }
  return out;
}

Shape with_mat(Shape batch, int64_t r, int64_t c) {
  batch.push_back(r);
  batch.push_back(c);
  return batch;
}

std::vector<double> binary_ref(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& out) {
  std::vector<double> va = values(a), vb = values(b), o(static_cast<size_t>(numel_of(out)));
  for (int64_t i = 0; i < numel_of(out); ++i) {
    std::vector<int64_t> idx = unravel(i, out);
    double x = va[static_cast<size_t>(ravel_broadcast(idx, a.shape()))];
    double y = vb[static_cast<size_t>(ravel_broadcast(idx, b.shape()))];
    double r = 0;
    switch (op) {
      case BinaryOp::add: r = x + y; break;
      case BinaryOp::sub: r = x - y; break;
      case BinaryOp::mul: r = x * y; break;
      case BinaryOp::div: r = x / y; break;
    }
    o[static_cast<size_t>(i)] = r;
  }
  return o;
}

// Rows of the last dim as vectors.
std::vector<std::vector<double>> rows_of(const Tensor& t) {
  std::vector<double> v = values(t);
  int64_t n = t.size(-1), rows = n ? t.numel() / n : 0;
  std::vector<std::vector<double>> r(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) r[static_cast<size_t>(i)].assign(v.begin() + i * n, v.begin() + (i + 1) * n);
  return r;
}

std::vector<double> log_softmax_row(const std::vector<double>& x) {
  double m = *std::max_element(x.begin(), x.end()), s = 0;
  for (double v : x) s += std::exp(v - m);
  std::vector<double> y(x.size());
  for (size_t j = 0; j < x.size(); ++j) y[j] = x[j] - m - std::log(s);
  return y;
}

}  // namespace

// ---- matmul ----

TEST(OpsMatmul, AllTransposeCombosBatchedAndOddSizes) {
  struct Case {
    Shape batch;
    int64_t m, k, n;
  };
  const Case cases[] = {{{}, 1, 1, 1},   {{}, 3, 5, 7},     {{}, 1, 7, 1},    {{}, 17, 1, 9},
                        {{2}, 4, 3, 5},  {{2, 3}, 3, 2, 1}, {{1}, 5, 6, 2},   {{3, 1}, 1, 4, 3},
                        {{}, 33, 65, 17}};
  uint64_t seed = 100;
  for (DType dt : kFloat)
    for (const Case& c : cases)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          Tensor a = randn(ta ? with_mat(c.batch, c.k, c.m) : with_mat(c.batch, c.m, c.k), ++seed, dt);
          Tensor b = randn(tb ? with_mat(c.batch, c.n, c.k) : with_mat(c.batch, c.k, c.n), ++seed, dt);
          Tensor out = ops::matmul(a, b, ta, tb);
          EXPECT_EQ(out.shape(), with_mat(c.batch, c.m, c.n));
          EXPECT_EQ(out.dtype(), dt);
          std::vector<double> ref = matmul_ref(values(a), values(b), numel_of(c.batch), c.m, c.n, c.k, ta, tb, false);
          double tol = (dt == DType::f64 ? 1e-12 : 2e-6) * (1 + static_cast<double>(c.k));
          EXPECT_TRUE(all_close(out, ref, tol, tol))
              << dtype_name(dt) << " " << shape_str(a.shape()) << " x " << shape_str(b.shape()) << " ta " << ta
              << " tb " << tb;
        }
}

TEST(OpsMatmul, SharedTwoDimensionalRightHandSide) {
  uint64_t seed = 300;
  for (DType dt : kFloat)
    for (Shape batch : {Shape{2}, Shape{3, 1}, Shape{1}, Shape{2, 3}})
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          int64_t m = 3, k = 5, n = 4;
          Tensor a = randn(ta ? with_mat(batch, k, m) : with_mat(batch, m, k), ++seed, dt);
          Tensor b = randn(tb ? Shape{n, k} : Shape{k, n}, ++seed, dt);
          Tensor out = ops::matmul(a, b, ta, tb);
          EXPECT_EQ(out.shape(), with_mat(batch, m, n));
          std::vector<double> ref = matmul_ref(values(a), values(b), numel_of(batch), m, n, k, ta, tb, true);
          EXPECT_TRUE(all_close(out, ref, atol(dt) * 10, rtol(dt) * 10))
              << dtype_name(dt) << " " << shape_str(batch) << " ta " << ta << " tb " << tb;
        }
}

TEST(OpsMatmul, EmptyInnerDimGivesZerosAndEmptyOuterDims) {
  for (DType dt : kFloat) {
    Tensor out = ops::matmul(Tensor::empty({3, 0}, dt), Tensor::empty({0, 4}, dt));
    EXPECT_EQ(out.shape(), (Shape{3, 4}));
    EXPECT_EQ(values(out), std::vector<double>(12, 0.0));
    Tensor bout = ops::matmul(Tensor::empty({2, 0, 3}, dt), Tensor::empty({2, 0, 5}, dt), true, false);
    EXPECT_EQ(bout.shape(), (Shape{2, 3, 5}));
    EXPECT_EQ(values(bout), std::vector<double>(30, 0.0));
    EXPECT_EQ(ops::matmul(Tensor::empty({0, 3}, dt), Tensor::empty({3, 4}, dt)).shape(), (Shape{0, 4}));
    EXPECT_EQ(ops::matmul(Tensor::empty({0, 2, 3}, dt), Tensor::empty({3, 4}, dt)).shape(), (Shape{0, 2, 4}));
  }
}

TEST(OpsMatmul, SmallExactProductAndViews) {
  Tensor a = Tensor::from<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from<float>({5, 6, 7, 8}, {2, 2});
  EXPECT_EQ(ops::matmul(a, b).to_vector<float>(), (std::vector<float>{19, 22, 43, 50}));
  EXPECT_EQ(ops::matmul(a, b, true, false).to_vector<float>(), (std::vector<float>{26, 30, 38, 44}));
  EXPECT_EQ(ops::matmul(a, b, false, true).to_vector<float>(), (std::vector<float>{17, 23, 39, 53}));
  EXPECT_EQ(ops::matmul(a, b, true, true).to_vector<float>(), (std::vector<float>{23, 31, 34, 46}));
  // Inputs that are views at an offset.
  Tensor big = Tensor::from<double>({9, 9, 1, 2, 3, 4, 5, 6}, {4, 2});
  Tensor va = big.slice(1, 3);  // [[1, 2], [3, 4]] at offset 2
  Tensor vb = big.slice(2, 4);  // [[3, 4], [5, 6]]
  EXPECT_EQ(values(ops::matmul(va, vb)), (std::vector<double>{13, 16, 29, 36}));
}

// ---- element-wise ----

TEST(OpsUnary, MatchesStdMath) {
  for (DType dt : kFloat)
    for (UnaryOp op : kUnary)
      for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 9}, Shape{}}) {
        Tensor x = needs_positive(op) ? randu(s, 1, 0.01, 5.0, dt) : randn(s, 2, dt, 3.0);
        Tensor y = ops::unary(op, x);
        EXPECT_EQ(y.shape(), s);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_TRUE(all_close(y, unary_ref(op, values(x)), atol(dt), dt == DType::f64 ? 1e-13 : 2e-6))
            << unary_name(op) << " " << dtype_name(dt) << " " << shape_str(s);
      }
}

TEST(OpsUnary, ExtremeInputsStayFinite) {
  for (DType dt : kFloat) {
    Tensor x = Tensor::from<double>({-1000, -50, 0, 50, 1000}).to(dt);
    std::vector<double> sig = values(ops::unary(UnaryOp::sigmoid, x));
    EXPECT_EQ(sig[0], 0.0);
    EXPECT_EQ(sig[2], 0.5);
    EXPECT_EQ(sig[4], 1.0);
    for (double v : sig) EXPECT_FALSE(std::isnan(v));
    std::vector<double> sp = values(ops::unary(UnaryOp::softplus, x));
    EXPECT_EQ(sp[0], 0.0);
    EXPECT_NEAR(sp[2], std::log(2.0), 1e-7);
    EXPECT_EQ(sp[4], 1000.0);
    EXPECT_NEAR(sp[3], 50.0, 1e-6);
    std::vector<double> si = values(ops::unary(UnaryOp::silu, x));
    EXPECT_EQ(si[0], 0.0);
    EXPECT_EQ(si[4], 1000.0);
    std::vector<double> ge = values(ops::unary(UnaryOp::gelu_tanh, x));
    EXPECT_EQ(ge[0], 0.0);
    EXPECT_EQ(ge[4], 1000.0);
    std::vector<double> th = values(ops::unary(UnaryOp::tanh, x));
    EXPECT_EQ(th[0], -1.0);
    EXPECT_EQ(th[4], 1.0);
    EXPECT_TRUE(std::isinf(values(ops::unary(UnaryOp::exp, x))[4]));
    EXPECT_EQ(values(ops::unary(UnaryOp::exp, x))[0], 0.0);
    EXPECT_EQ(values(ops::unary(UnaryOp::log, Tensor::zeros({1}, dt)))[0], -std::numeric_limits<double>::infinity());
  }
}

TEST(OpsUnary, BackwardMatchesDerivatives) {
  for (DType dt : kFloat)
    for (UnaryOp op : kUnary) {
      // Away from the kinks of relu/abs/relu2 at 0.
      Tensor x = needs_positive(op) ? randu({5, 7}, 3, 0.2, 4.0, dt) : randu({5, 7}, 3, 0.1, 3.0, dt);
      if (!needs_positive(op)) {
        std::vector<double> v = values(x);
        for (size_t i = 0; i < v.size(); i += 2) v[i] = -v[i];
        x = Tensor::from(v, {5, 7}).to(dt);
      }
      Tensor dy = randn({5, 7}, 4, dt);
      Tensor dx = ops::unary_backward(op, x, dy);
      std::vector<double> xv = values(x), g = values(dy), ref(xv.size());
      const double h = 1e-6;
      for (size_t i = 0; i < xv.size(); ++i) {
        double fp = unary_ref(op, {xv[i] + h})[0], fm = unary_ref(op, {xv[i] - h})[0];
        ref[i] = g[i] * (fp - fm) / (2 * h);
      }
      EXPECT_TRUE(all_close(dx, ref, 1e-5, 1e-5)) << unary_name(op) << " " << dtype_name(dt);
    }
}

TEST(OpsBinary, BroadcastingAgainstNaive) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{3, 4}, {3, 4}},     {{2, 3, 4}, {4}},    {{2, 3, 4}, {3, 1}},   {{1, 4}, {3, 1}},
      {{5}, {}},            {{}, {5}},           {{2, 1, 3}, {1, 4, 1}}, {{1}, {}},
      {{}, {}},             {{4, 1}, {1}},       {{2, 3, 1}, {2, 1, 5}}, {{1, 1, 1}, {3}},
      {{7}, {1, 7}},        {{0, 3}, {3}},       {{3, 1, 2}, {3, 5, 1}}, {{1, 2, 1, 3}, {4, 1, 1, 1}}};
  uint64_t seed = 500;
  for (DType dt : kFloat)
    for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div})
      for (const auto& [sa, sb] : pairs) {
        Tensor a = randn(sa, ++seed, dt);
        Tensor b = randu(sb, ++seed, 0.5, 2.0, dt);
        Tensor out = ops::binary(op, a, b);
        Shape expect = ops::broadcast_shape(sa, sb, "test");
        EXPECT_EQ(out.shape(), expect);
        EXPECT_TRUE(all_close(out, binary_ref(op, a, b, expect), atol(dt), rtol(dt)))
            << binary_name(op) << " " << dtype_name(dt) << " " << shape_str(sa) << " " << shape_str(sb);
      }
  // The named wrappers are the same ops.
  Tensor a = Tensor::from<double>({6, 8}), b = Tensor::from<double>({2});
  EXPECT_EQ(values(ops::add(a, b)), (std::vector<double>{8, 10}));
  EXPECT_EQ(values(ops::sub(a, b)), (std::vector<double>{4, 6}));
  EXPECT_EQ(values(ops::mul(a, b)), (std::vector<double>{12, 16}));
  EXPECT_EQ(values(ops::div(a, b)), (std::vector<double>{3, 4}));
}

TEST(OpsBinary, BroadcastShape) {
  EXPECT_EQ(ops::broadcast_shape({2, 1, 3}, {4, 1}, "t"), (Shape{2, 4, 3}));
  EXPECT_EQ(ops::broadcast_shape({}, {}, "t"), Shape{});
  EXPECT_EQ(ops::broadcast_shape({0}, {1}, "t"), Shape{0});
  EXPECT_THROW(ops::broadcast_shape({2, 3}, {3, 2}, "t"), Error);
  EXPECT_THROW(ops::broadcast_shape({0}, {2}, "t"), Error);
}

TEST(OpsBinary, ViewsAsInputs) {
  Tensor t = Tensor::arange(12, DType::f64).reshape({4, 3});
  Tensor a = t.slice(1, 3), b = t.slice(3, 4);  // [2, 3] and [1, 3] at offsets
  EXPECT_EQ(values(ops::add(a, b)), (std::vector<double>{12, 14, 16, 15, 17, 19}));
  EXPECT_EQ(values(ops::mul(a, a)), (std::vector<double>{9, 16, 25, 36, 49, 64}));
}

TEST(OpsSumTo, InverseOfBroadcasting) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {4}},    {{2, 3, 4}, {3, 1}},    {{2, 3, 4}, {1, 3, 1}}, {{2, 3, 4}, {}},
      {{2, 3, 4}, {2, 1, 4}}, {{2, 3, 4}, {1}},    {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {1, 1, 4}},
      {{2, 3, 4}, {2, 1, 1}}, {{5}, {1}},          {{5, 1}, {1}},          {{1, 5}, {5}},
      {{3, 1, 5}, {3, 1, 1}}, {{4, 1}, {}},        {{0, 3}, {3}},          {{7, 3}, {7, 1}}};
  uint64_t seed = 700;
  for (DType dt : kFloat)
    for (const auto& [sx, st] : cases) {
      Tensor x = randn(sx, ++seed, dt);
      Tensor out = ops::sum_to(x, st);
      EXPECT_EQ(out.shape(), st);
      std::vector<double> xv = values(x), ref(static_cast<size_t>(numel_of(st)), 0.0);
      for (int64_t i = 0; i < x.numel(); ++i)
        ref[static_cast<size_t>(ravel_broadcast(unravel(i, sx), st))] += xv[static_cast<size_t>(i)];
      EXPECT_TRUE(all_close(out, ref, atol(dt) * 4, rtol(dt) * 4))
          << dtype_name(dt) << " " << shape_str(sx) << " -> " << shape_str(st);
    }
  // Same shape: returned as is.
  Tensor x = randn({2, 3}, 1);
  EXPECT_TRUE(ops::sum_to(x, {2, 3}).shares_storage(x));
}

TEST(OpsScalar, ScaleAddScalarAxpy) {
  for (DType dt : kFloat) {
    Tensor x = randn({3, 5}, 8, dt), y = randn({3, 5}, 9, dt);
    std::vector<double> xv = values(x), yv = values(y);
    std::vector<double> s(xv.size()), a(xv.size()), p(xv.size());
    for (size_t i = 0; i < xv.size(); ++i) {
      s[i] = -2.5 * xv[i];
      a[i] = xv[i] + 0.75;
      p[i] = yv[i] + 1.5 * xv[i];
    }
    EXPECT_TRUE(all_close(ops::scale(x, -2.5), s, atol(dt), rtol(dt)));
    EXPECT_TRUE(all_close(ops::add_scalar(x, 0.75), a, atol(dt), rtol(dt)));
    void* before = y.raw_data();
    ops::axpy(y, 1.5, x);
    EXPECT_EQ(y.raw_data(), before) << "in place";
    EXPECT_TRUE(all_close(y, p, atol(dt), rtol(dt)));
    EXPECT_EQ(values(ops::scale(Tensor::scalar(2.0, dt), 3.0)), std::vector<double>{6.0});
    EXPECT_EQ(values(ops::add_scalar(Tensor::empty({0}, dt), 3.0)).size(), 0u);
  }
}

// ---- reductions ----

TEST(OpsReduce, SumMeanMaxLast) {
  uint64_t seed = 900;
  for (DType dt : kFloat)
    for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 4}, Shape{4, 1}, Shape{1, 1, 9}}) {
      Tensor x = randn(s, ++seed, dt);
      Shape rs(s.begin(), s.end() - 1);
      std::vector<double> sum, mean, mx;
      std::vector<int64_t> arg;
      for (const auto& row : rows_of(x)) {
        double t = 0;
        for (double v : row) t += v;
        sum.push_back(t);
        mean.push_back(t / static_cast<double>(row.size()));
        auto it = std::max_element(row.begin(), row.end());  // first maximum
        mx.push_back(*it);
        arg.push_back(it - row.begin());
      }
      Tensor ts = ops::sum_last(x), tm = ops::mean_last(x);
      auto [tv, ti] = ops::max_last(x);
      EXPECT_EQ(ts.shape(), rs);
      EXPECT_EQ(tm.shape(), rs);
      EXPECT_EQ(tv.shape(), rs);
      EXPECT_EQ(ti.shape(), rs);
      EXPECT_EQ(ti.dtype(), DType::i64);
      EXPECT_TRUE(all_close(ts, sum, atol(dt) * 4, rtol(dt) * 4));
      EXPECT_TRUE(all_close(tm, mean, atol(dt) * 4, rtol(dt) * 4));
      EXPECT_EQ(values(tv), mx);
      EXPECT_EQ(ti.to_vector<int64_t>(), arg);
    }
}

TEST(OpsReduce, MaxIndicesAreTheFirstMaximum) {
  for (DType dt : kFloat) {
    Tensor x = Tensor::from<double>({1, 3, 3, 2, 5, 5, 5, 5, -1, -1, -2, -1, 0, 0, 0, 7}, {4, 4}).to(dt);
    auto [v, i] = ops::max_last(x);
    EXPECT_EQ(values(v), (std::vector<double>{3, 5, -1, 7}));
    EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 3}));
    double inf = std::numeric_limits<double>::infinity();
    auto [v2, i2] = ops::max_last(Tensor::from<double>({-inf, -inf, -3, inf, 1, inf}, {2, 3}).to(dt));
    EXPECT_EQ(values(v2), (std::vector<double>{-3, inf}));
    EXPECT_EQ(i2.to_vector<int64_t>(), (std::vector<int64_t>{2, 0}));
  }
}

TEST(OpsReduce, SumOverAnEmptyLastDimIsZero) {
  Tensor out = ops::sum_last(Tensor::empty({3, 0}, DType::f64));
  EXPECT_EQ(out.shape(), Shape{3});
  EXPECT_EQ(values(out), std::vector<double>(3, 0.0));
  EXPECT_EQ(ops::sum_all(Tensor::empty({0}, DType::f32)).item<float>(), 0.0f);
}

TEST(OpsReduce, SumMeanMaxAll) {
  uint64_t seed = 1000;
  for (DType dt : kFloat)
    for (Shape s : {Shape{}, Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 4}}) {
      Tensor x = randn(s, ++seed, dt);
      std::vector<double> v = values(x);
      double sum = 0;
      for (double e : v) sum += e;
      Tensor ts = ops::sum_all(x), tm = ops::mean_all(x), tx = ops::max_all(x);
      EXPECT_EQ(ts.shape(), Shape{});
      EXPECT_EQ(tm.shape(), Shape{});
      EXPECT_EQ(tx.shape(), Shape{});
      EXPECT_NEAR(ts.item<double>(), sum, atol(dt) * 4);
      EXPECT_NEAR(tm.item<double>(), sum / static_cast<double>(v.size()), atol(dt) * 4);
      EXPECT_EQ(tx.item<double>(), *std::max_element(v.begin(), v.end()));
    }
  // sum_all accumulates in double: a million f32 ones sum exactly.
  EXPECT_EQ(ops::sum_all(Tensor::ones({1000, 1000})).item<float>(), 1e6f);
  EXPECT_EQ(ops::mean_all(Tensor::full({1 << 20}, 0.1, DType::f32)).item<float>(), 0.1f);
}

TEST(OpsReduce, ScatterLast) {
  for (DType dt : kFloat) {
    Tensor idx = Tensor::from<int64_t>({2, 0, 4, 4, 1, 0}, {2, 3});
    Tensor src = Tensor::from<double>({1, 2, 3, 4, 5, 6}, {2, 3}).to(dt);
    Tensor out = ops::scatter_last(idx, src, 5);
    EXPECT_EQ(out.shape(), (Shape{2, 3, 5}));
    std::vector<double> ref(30, 0.0);
    std::vector<int64_t> iv = idx.to_vector<int64_t>();
    for (int64_t r = 0; r < 6; ++r) ref[static_cast<size_t>(r * 5 + iv[static_cast<size_t>(r)])] = static_cast<double>(r + 1);
    EXPECT_EQ(values(out), ref);
    // i32 indices and a scalar source.
    Tensor o2 = ops::scatter_last(Tensor::from<int32_t>({1}).reshape({}), Tensor::scalar(7, dt), 3);
    EXPECT_EQ(o2.shape(), Shape{3});
    EXPECT_EQ(values(o2), (std::vector<double>{0, 7, 0}));
    // It is the adjoint of max_last's pick: scatter of the max values rebuilds the maxima.
    Tensor x = randn({4, 6}, 77, dt);
    auto [mv, mi] = ops::max_last(x);
    std::vector<double> sc = values(ops::scatter_last(mi, mv, 6)), xv = values(x);
    std::vector<int64_t> miv = mi.to_vector<int64_t>();
    for (int64_t r = 0; r < 4; ++r)
      EXPECT_EQ(sc[static_cast<size_t>(r * 6 + miv[static_cast<size_t>(r)])],
                xv[static_cast<size_t>(r * 6 + miv[static_cast<size_t>(r)])]);
  }
}

// ---- softmax ----

TEST(OpsSoftmax, AgainstNaiveIncludingLargeValues) {
  uint64_t seed = 1100;
  for (DType dt : kFloat)
    for (Shape s : {Shape{1}, Shape{7}, Shape{3, 5}, Shape{2, 1, 4}, Shape{4, 1}}) {
      Tensor x = randn(s, ++seed, dt, 3.0);
      std::vector<double> ls, sm;
      for (const auto& row : rows_of(x))
        for (double v : log_softmax_row(row)) ls.push_back(v), sm.push_back(std::exp(v));
      Tensor y = ops::softmax(x), ly = ops::log_softmax(x);
      EXPECT_EQ(y.shape(), s);
      EXPECT_TRUE(all_close(y, sm, atol(dt), rtol(dt) * 10));
      EXPECT_TRUE(all_close(ly, ls, atol(dt) * 10, rtol(dt) * 10));
      for (const auto& row : rows_of(y)) {
        double t = 0;
        for (double v : row) t += v;
        EXPECT_NEAR(t, 1.0, atol(dt) * 10);
      }
    }
  for (DType dt : kFloat) {
    // Huge and very negative logits: shifted rows give the same result, with no inf or NaN.
    Tensor big = Tensor::from<double>({1000, 1001, 1002, -1000, -999, -998, 80, 0, -80, 0, 0, 0}, {4, 3}).to(dt);
    std::vector<double> y = values(ops::softmax(big)), ly = values(ops::log_softmax(big));
    std::vector<double> base = log_softmax_row({0, 1, 2});
    // In f32 the logits themselves carry ~6e-5 of rounding at 1000.
    double tol = dt == DType::f32 ? 2e-4 : 1e-10;
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j < 3; ++j) {
        EXPECT_NEAR(ly[static_cast<size_t>(r * 3 + j)], base[static_cast<size_t>(j)], tol);
        EXPECT_NEAR(y[static_cast<size_t>(r * 3 + j)], std::exp(base[static_cast<size_t>(j)]), tol);
      }
    EXPECT_NEAR(ly[8], -160.0, 1e-3);  // log_softmax keeps tiny probabilities' logs exact
    EXPECT_NEAR(y[6], 1.0, 1e-6);
    EXPECT_NEAR(y[9], 1.0 / 3.0, 1e-6);
    for (double v : y) EXPECT_TRUE(std::isfinite(v));
    for (double v : ly) EXPECT_TRUE(std::isfinite(v));
  }
}

TEST(OpsSoftmax, BackwardAgainstNaive) {
  for (DType dt : kFloat) {
    Tensor x = randn({3, 6}, 12, dt), dy = randn({3, 6}, 13, dt);
    Tensor y = ops::softmax(x), ly = ops::log_softmax(x);
    std::vector<double> ref, lref;
    auto yr = rows_of(y), lyr = rows_of(ly), gr = rows_of(dy);
    for (size_t r = 0; r < yr.size(); ++r) {
      double dot = 0, gs = 0;
      for (size_t j = 0; j < yr[r].size(); ++j) dot += gr[r][j] * yr[r][j], gs += gr[r][j];
      for (size_t j = 0; j < yr[r].size(); ++j) {
        ref.push_back(yr[r][j] * (gr[r][j] - dot));
        lref.push_back(gr[r][j] - std::exp(lyr[r][j]) * gs);
      }
    }
    EXPECT_TRUE(all_close(ops::softmax_backward(y, dy), ref, atol(dt) * 10, rtol(dt) * 10));
    EXPECT_TRUE(all_close(ops::log_softmax_backward(ly, dy), lref, atol(dt) * 10, rtol(dt) * 10));
  }
}

// ---- norms ----

TEST(OpsNorm, LayerNormForwardAgainstNaive) {
  uint64_t seed = 1200;
  for (DType dt : kFloat)
    for (Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 1, 5}, Shape{4}, Shape{2, 3, 1}})
      for (bool bias : {true, false}) {
        int64_t d = s.back();
        Tensor x = randn(s, ++seed, dt, 2.0), w = randn({d}, ++seed, dt), b = randn({d}, ++seed, dt);
        double eps = 1e-5;
        ops::NormOut o = ops::layer_norm(x, w, bias ? b : Tensor(), eps);
        EXPECT_EQ(o.y.shape(), s);
        Shape rs(s.begin(), s.end() - 1);
        EXPECT_EQ(o.mean.shape(), rs);
        EXPECT_EQ(o.rstd.shape(), rs);
        std::vector<double> wv = values(w), bv = values(b), y, mean, rstd;
        for (const auto& row : rows_of(x)) {
          double m = 0, v = 0;
          for (double e : row) m += e;
          m /= static_cast<double>(d);
          for (double e : row) v += (e - m) * (e - m);
          double rs_ = 1.0 / std::sqrt(v / static_cast<double>(d) + eps);  // biased variance
          mean.push_back(m);
          rstd.push_back(rs_);
          for (int64_t j = 0; j < d; ++j)
            y.push_back((row[static_cast<size_t>(j)] - m) * rs_ * wv[static_cast<size_t>(j)] +
                        (bias ? bv[static_cast<size_t>(j)] : 0.0));
        }
        EXPECT_TRUE(all_close(o.y, y, atol(dt) * 20, rtol(dt) * 20)) << dtype_name(dt) << shape_str(s);
        EXPECT_TRUE(all_close(o.mean, mean, atol(dt) * 10, rtol(dt) * 10));
        EXPECT_TRUE(all_close(o.rstd, rstd, atol(dt) * 10, rtol(dt) * 10));
      }
}

TEST(OpsNorm, RmsNormForwardAgainstNaive) {
  uint64_t seed = 1300;
  for (DType dt : kFloat)
    for (Shape s : {Shape{1, 1}, Shape{3, 7}, Shape{2, 1, 5}, Shape{4}}) {
      int64_t d = s.back();
      Tensor x = randn(s, ++seed, dt, 2.0), w = randn({d}, ++seed, dt);
      double eps = 1e-6;
      ops::NormOut o = ops::rms_norm(x, w, eps);
      EXPECT_FALSE(o.mean.defined());
      std::vector<double> wv = values(w), y, rstd;
      for (const auto& row : rows_of(x)) {
        double ss = 0;
        for (double e : row) ss += e * e;
        double r = 1.0 / std::sqrt(ss / static_cast<double>(d) + eps);
        rstd.push_back(r);
        for (int64_t j = 0; j < d; ++j) y.push_back(row[static_cast<size_t>(j)] * r * wv[static_cast<size_t>(j)]);
      }
      EXPECT_TRUE(all_close(o.y, y, atol(dt) * 20, rtol(dt) * 20));
      EXPECT_TRUE(all_close(o.rstd, rstd, atol(dt) * 10, rtol(dt) * 10));
    }
}

TEST(OpsNorm, ConstantRowsAreStable) {
  for (DType dt : kFloat) {
    Tensor x = Tensor::full({2, 8}, 3.0, dt);
    ops::NormOut o = ops::layer_norm(x, Tensor::ones({8}, dt), Tensor::zeros({8}, dt), 1e-5);
    for (double v : values(o.y)) EXPECT_EQ(v, 0.0);
    ops::NormOut r = ops::rms_norm(Tensor::zeros({2, 8}, dt), Tensor::ones({8}, dt), 1e-6);
    for (double v : values(r.y)) EXPECT_EQ(v, 0.0);
    for (double v : values(r.rstd)) EXPECT_NEAR(v, 1000.0, 1e-2);
  }
}

TEST(OpsNorm, BackwardF32AgreesWithF64) {
  // The f64 backward is gradchecked; the f32 kernels must agree with it.
  Tensor x = randn({5, 9}, 20), w = randn({9}, 21), dy = randn({5, 9}, 22);
  Tensor b = randn({9}, 23);
  auto ln64 = ops::layer_norm(x, w, b, 1e-5);
  auto g64 = ops::layer_norm_backward(x, w, ln64, dy, true);
  Tensor x32 = x.to(DType::f32), w32 = w.to(DType::f32), dy32 = dy.to(DType::f32);
  auto ln32 = ops::layer_norm(x32, w32, b.to(DType::f32), 1e-5);
  auto g32 = ops::layer_norm_backward(x32, w32, ln32, dy32, true);
  EXPECT_TRUE(all_close(values(g32.dx), values(g64.dx), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(values(g32.dw), values(g64.dw), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(values(g32.db), values(g64.db), 1e-4, 1e-4));
  auto gnb = ops::layer_norm_backward(x, w, ln64, dy, false);
  EXPECT_FALSE(gnb.db.defined());
  EXPECT_EQ(values(gnb.dx), values(g64.dx));
  // db is the column sum of dy, dw the column sum of dy * xhat.
  std::vector<double> dyv = values(dy), db(9, 0.0);
  for (size_t i = 0; i < dyv.size(); ++i) db[i % 9] += dyv[i];
  EXPECT_TRUE(all_close(g64.db, db, 1e-12, 1e-12));

  auto rn64 = ops::rms_norm(x, w, 1e-6);
  auto r64 = ops::rms_norm_backward(x, w, rn64, dy);
  auto rn32 = ops::rms_norm(x32, w32, 1e-6);
  auto r32 = ops::rms_norm_backward(x32, w32, rn32, dy32);
  EXPECT_FALSE(r64.db.defined());
  EXPECT_TRUE(all_close(values(r32.dx), values(r64.dx), 1e-4, 1e-4));
  EXPECT_TRUE(all_close(values(r32.dw), values(r64.dw), 1e-4, 1e-4));
}

// ---- embedding ----

TEST(OpsEmbedding, ForwardGathersRows) {
  for (DType dt : kFloat) {
    Tensor w = randn({6, 4}, 30, dt);
    std::vector<double> wv = values(w);
    for (DType it : {DType::i32, DType::i64}) {
      Tensor ids = Tensor::from<int64_t>({5, 0, 3, 3, 1, 5}, {2, 3}).to(it);
      Tensor out = ops::embedding(w, ids);
      EXPECT_EQ(out.shape(), (Shape{2, 3, 4}));
      EXPECT_EQ(out.dtype(), dt);
      std::vector<double> ref;
      for (int64_t id : ids.to_vector<int64_t>())
        for (int64_t j = 0; j < 4; ++j) ref.push_back(wv[static_cast<size_t>(id * 4 + j)]);
      EXPECT_EQ(values(out), ref);
    }
    // Scalar ids give one row; empty ids give no rows.
    Tensor one = ops::embedding(w, Tensor::from<int64_t>({2}).reshape({}));
    EXPECT_EQ(one.shape(), Shape{4});
    EXPECT_EQ(values(one), std::vector<double>(wv.begin() + 8, wv.begin() + 12));
    EXPECT_EQ(ops::embedding(w, Tensor::empty({0}, DType::i64)).shape(), (Shape{0, 4}));
  }
}

TEST(OpsEmbedding, BackwardAccumulatesRepeatedIds) {
  for (DType dt : kFloat)
    for (DType it : {DType::i32, DType::i64}) {
      Tensor ids = Tensor::from<int64_t>({0, 3, 3, 1, 3, 0}, {3, 2}).to(it);
      Tensor dy = randn({3, 2, 5}, 31, dt);
      Tensor dw = ops::embedding_backward(ids, dy, 7);
      EXPECT_EQ(dw.shape(), (Shape{7, 5}));
      std::vector<double> g = values(dy), ref(35, 0.0);
      std::vector<int64_t> iv = ids.to_vector<int64_t>();
      for (size_t i = 0; i < iv.size(); ++i)
        for (size_t j = 0; j < 5; ++j) ref[static_cast<size_t>(iv[i]) * 5 + j] += g[i * 5 + j];
      EXPECT_TRUE(all_close(dw, ref, atol(dt), rtol(dt)));
      // Rows never looked up are exactly zero.
      std::vector<double> d = values(dw);
      for (size_t r : {2u, 4u, 5u, 6u})
        for (size_t j = 0; j < 5; ++j) EXPECT_EQ(d[r * 5 + j], 0.0);
    }
}

// ---- cross entropy ----

TEST(OpsCrossEntropy, LossIsMinusMeanLogSoftmaxAtTargets) {
  for (DType dt : kFloat)
    for (DType it : {DType::i32, DType::i64}) {
      Tensor logits = randn({6, 5}, 40, dt, 2.0);
      Tensor targets = Tensor::from<int64_t>({1, 4, -100, 0, 4, 2}).to(it);
      ops::CrossEntropyOut ce = ops::cross_entropy(logits, targets);
      EXPECT_EQ(ce.loss.shape(), Shape{});
      EXPECT_EQ(ce.count, 5);
      auto rows = rows_of(logits);
      std::vector<int64_t> t = targets.to_vector<int64_t>();
      double total = 0;
      std::vector<double> grad;
      for (size_t r = 0; r < rows.size(); ++r) {
        std::vector<double> ls = log_softmax_row(rows[r]);
        bool ignored = t[r] == -100;
        if (!ignored) total -= ls[static_cast<size_t>(t[r])];
        for (size_t j = 0; j < ls.size(); ++j)
          grad.push_back(ignored ? 0.0 : (std::exp(ls[j]) - (static_cast<int64_t>(j) == t[r] ? 1.0 : 0.0)) / 5.0);
      }
      EXPECT_NEAR(ce.loss.item<double>(), total / 5.0, atol(dt) * 10);
      ASSERT_TRUE(ce.dlogits.defined());
      EXPECT_EQ(ce.dlogits.shape(), logits.shape());
      EXPECT_TRUE(all_close(ce.dlogits, grad, atol(dt), rtol(dt) * 10));
      // The ignored row's gradient is exactly zero.
      std::vector<double> g = values(ce.dlogits);
      for (size_t j = 10; j < 15; ++j) EXPECT_EQ(g[j], 0.0);
      // Without the gradient: the same loss, no dlogits.
      ops::CrossEntropyOut nog = ops::cross_entropy(logits, targets, -100, false);
      EXPECT_FALSE(nog.dlogits.defined());
      EXPECT_EQ(nog.loss.item<double>(), ce.loss.item<double>());
      EXPECT_EQ(nog.count, 5);
    }
}

TEST(OpsCrossEntropy, AllIgnoredAndCustomIgnoreIndex) {
  for (DType dt : kFloat) {
    Tensor logits = randn({3, 4}, 41, dt);
    ops::CrossEntropyOut ce = ops::cross_entropy(logits, Tensor::from<int64_t>({-100, -100, -100}));
    EXPECT_EQ(ce.count, 0);
    EXPECT_EQ(ce.loss.item<double>(), 0.0);
    for (double v : values(ce.dlogits)) EXPECT_EQ(v, 0.0);
    // A valid class id as ignore_index.
    Tensor t = Tensor::from<int32_t>({0, 2, 0});
    ops::CrossEntropyOut c2 = ops::cross_entropy(logits, t, 0);
    EXPECT_EQ(c2.count, 1);
    double expect = -log_softmax_row(rows_of(logits)[1])[2];
    EXPECT_NEAR(c2.loss.item<double>(), expect, atol(dt) * 10);
    // Zero rows.
    ops::CrossEntropyOut c3 = ops::cross_entropy(Tensor::empty({0, 4}, dt), Tensor::empty({0}, DType::i64));
    EXPECT_EQ(c3.count, 0);
    EXPECT_EQ(c3.loss.item<double>(), 0.0);
  }
}

TEST(OpsCrossEntropy, LargeLogitsAreStable) {
  for (DType dt : kFloat) {
    Tensor logits = Tensor::from<double>({1000, 1001, 1002, -1000, -1001, -1002}, {2, 3}).to(dt);
    ops::CrossEntropyOut ce = ops::cross_entropy(logits, Tensor::from<int64_t>({0, 0}));
    std::vector<double> ls = log_softmax_row({0, 1, 2});
    EXPECT_NEAR(ce.loss.item<double>(), (-ls[0] - ls[2]) / 2.0, 1e-4);
    for (double v : values(ce.dlogits)) EXPECT_TRUE(std::isfinite(v));
    // Each row's gradient sums to zero.
    for (const auto& row : rows_of(ce.dlogits)) {
      double s = 0;
      for (double v : row) s += v;
      EXPECT_NEAR(s, 0.0, dt == DType::f32 ? 1e-4 : 1e-12);
    }
  }
}

// ---- layout ----

TEST(OpsLayout, TransposeEveryDimPairOf4D) {
  const Shape s{2, 3, 4, 5};
  for (DType dt : {DType::f32, DType::f64, DType::i64, DType::bf16}) {
    Tensor x = Tensor::arange(numel_of(s), DType::f64).reshape(s).to(dt);
    std::vector<double> xv = values(x);
    for (int64_t d0 = 0; d0 < 4; ++d0)
      for (int64_t d1 = 0; d1 < 4; ++d1) {
        Tensor y = ops::transpose(x, d0, d1);
        Shape ts = s;
        std::swap(ts[static_cast<size_t>(d0)], ts[static_cast<size_t>(d1)]);
        ASSERT_EQ(y.shape(), ts);
        EXPECT_EQ(y.dtype(), dt);
        EXPECT_FALSE(y.shares_storage(x));
        std::vector<double> yv = values(y), ref(yv.size());
        for (int64_t i = 0; i < x.numel(); ++i) {
          std::vector<int64_t> idx = unravel(i, s);
          std::swap(idx[static_cast<size_t>(d0)], idx[static_cast<size_t>(d1)]);
          ref[static_cast<size_t>(ravel_broadcast(idx, ts))] = xv[static_cast<size_t>(i)];
        }
        EXPECT_EQ(yv, ref) << dtype_name(dt) << " dims " << d0 << ", " << d1;
        // Negative dims and the inverse.
        EXPECT_EQ(values(ops::transpose(x, d0 - 4, d1 - 4)), yv);
        EXPECT_EQ(values(ops::transpose(y, d1, d0)), xv);
      }
  }
  // Size-1 dims.
  Tensor z = randn({1, 3, 1, 2}, 5);
  EXPECT_EQ(values(ops::transpose(z, 0, 2)), values(z));
  EXPECT_EQ(ops::transpose(z, 1, 3).shape(), (Shape{1, 2, 1, 3}));
}

TEST(OpsLayout, ConcatAndSplitAreInverse) {
  const Shape s{2, 3, 4};
  for (DType dt : {DType::f32, DType::f64, DType::i32}) {
    Tensor x = Tensor::arange(24, DType::f64).reshape(s).to(dt);
    std::vector<double> xv = values(x);
    for (int64_t dim = 0; dim < 3; ++dim) {
      int64_t n = s[static_cast<size_t>(dim)];
      std::vector<int64_t> sizes = {1, 0, n - 1};
      std::vector<Tensor> parts = ops::split(x, sizes, dim);
      ASSERT_EQ(parts.size(), 3u);
      int64_t start = 0;
      for (size_t p = 0; p < parts.size(); ++p) {
        Shape ps = s;
        ps[static_cast<size_t>(dim)] = sizes[p];
        EXPECT_EQ(parts[p].shape(), ps);
        // Each part holds the elements whose index along dim is in [start, start + size).
        std::vector<double> ref;
        for (int64_t i = 0; i < x.numel(); ++i) {
          int64_t at = unravel(i, s)[static_cast<size_t>(dim)];
          if (at >= start && at < start + sizes[p]) ref.push_back(xv[static_cast<size_t>(i)]);
        }
        EXPECT_EQ(values(parts[p]), ref) << "dim " << dim << " part " << p;
        start += sizes[p];
      }
      Tensor back = ops::concat(parts, dim);
      EXPECT_EQ(back.shape(), s);
      EXPECT_EQ(values(back), xv);
      EXPECT_EQ(values(ops::concat(parts, dim - 3)), xv);
      EXPECT_EQ(values(ops::concat(ops::split(x, {n}, dim), dim)), xv);
    }
  }
  // Concat of different sizes along a dim.
  Tensor a = Tensor::from<double>({1, 2, 3, 4}, {2, 2}), b = Tensor::from<double>({5, 6}, {2, 1});
  EXPECT_EQ(values(ops::concat({a, b}, 1)), (std::vector<double>{1, 2, 5, 3, 4, 6}));
  EXPECT_EQ(values(ops::concat({a, b.reshape({1, 2})}, 0)), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(values(ops::concat({a}, 0)), values(a));
}

// ---- masking and scans ----

TEST(OpsMask, MaskedFillBroadcasting) {
  for (DType dt : kFloat) {
    Tensor x = randn({2, 3, 4}, 50, dt);
    std::vector<double> xv = values(x);
    const Tensor masks[] = {Tensor::from<int32_t>({1, 0, 1}, {3, 1}), Tensor::from<float>({0, 0.5f, 0, 1}),
                            Tensor::from<int64_t>({1}).reshape({}), Tensor::from<uint16_t>({0}),
                            Tensor::from<double>({1, 0}, {2, 1, 1}),
                            Tensor::from<int32_t>(std::vector<int32_t>(24, 0), {2, 3, 4})};
    for (const Tensor& m : masks) {
      Tensor y = ops::masked_fill(x, m, -7.5);
      EXPECT_EQ(y.shape(), x.shape());
      std::vector<double> mv = values(m), ref(xv.size());
      for (int64_t i = 0; i < x.numel(); ++i) {
        double mval = mv[static_cast<size_t>(ravel_broadcast(unravel(i, x.shape()), m.shape()))];
        ref[static_cast<size_t>(i)] = mval != 0 ? -7.5 : xv[static_cast<size_t>(i)];
      }
      EXPECT_EQ(values(y), ref) << shape_str(m.shape());
    }
    // -inf fill (attention masks).
    double inf = std::numeric_limits<double>::infinity();
    Tensor y = ops::masked_fill(Tensor::zeros({2, 2}, dt), Tensor::from<int32_t>({0, 1, 0, 0}, {2, 2}), -inf);
    EXPECT_EQ(values(y), (std::vector<double>{0, -inf, 0, 0}));
  }
}

TEST(OpsMask, WhereBroadcasting) {
  struct Case {
    Shape c, a, b;
  };
  const Case cases[] = {{{3, 1}, {2, 3, 4}, {4}},  {{4}, {2, 3, 4}, {}},     {{2, 1, 1}, {3, 1}, {1, 4}},
                        {{}, {3}, {3}},           {{2, 3}, {2, 3}, {2, 3}}, {{1}, {5}, {1}}};
  uint64_t seed = 1400;
  for (DType dt : kFloat)
    for (const Case& c : cases) {
      // A random 0/1 condition as i32 (a uniform fill truncated toward zero).
      Tensor cond = randu(c.c, ++seed, 0.0, 2.0).to(DType::i32);
      std::vector<double> cv = values(cond);
      Tensor a = randn(c.a, ++seed, dt), b = randn(c.b, ++seed, dt);
      Tensor out = ops::where(cond, a, b);
      Shape os = ops::broadcast_shape(ops::broadcast_shape(c.a, c.b, "t"), c.c, "t");
      EXPECT_EQ(out.shape(), os);
      std::vector<double> av = values(a), bv = values(b), ref(static_cast<size_t>(numel_of(os)));
      for (int64_t i = 0; i < numel_of(os); ++i) {
        std::vector<int64_t> idx = unravel(i, os);
        bool take_a = cv[static_cast<size_t>(ravel_broadcast(idx, c.c))] != 0;
        ref[static_cast<size_t>(i)] = take_a ? av[static_cast<size_t>(ravel_broadcast(idx, c.a))]
                                              : bv[static_cast<size_t>(ravel_broadcast(idx, c.b))];
      }
      EXPECT_EQ(values(out), ref) << shape_str(c.c) << " " << shape_str(c.a) << " " << shape_str(c.b);
    }
  // A float condition: any non-zero value selects a.
  Tensor w = ops::where(Tensor::from<float>({0.0f, -0.5f, 2.0f}), Tensor::from<double>({1, 2, 3}),
                        Tensor::from<double>({-1, -2, -3}));
  EXPECT_EQ(values(w), (std::vector<double>{-1, 2, 3}));
}

TEST(OpsScan, CumsumBothDirectionsEveryDim) {
  const Shape s{2, 3, 4};
  for (DType dt : kFloat) {
    Tensor x = randn(s, 60, dt);
    std::vector<double> xv = values(x);
    for (int64_t dim = 0; dim < 3; ++dim)
      for (bool reverse : {false, true}) {
        Tensor y = ops::cumsum(x, dim, reverse);
        EXPECT_EQ(y.shape(), s);
        std::vector<double> ref(xv.size());
        for (int64_t i = 0; i < x.numel(); ++i) {
          std::vector<int64_t> idx = unravel(i, s);
          int64_t at = idx[static_cast<size_t>(dim)];
          double acc = 0;
          for (int64_t k = 0; k < s[static_cast<size_t>(dim)]; ++k) {
            if (reverse ? k < at : k > at) continue;
            idx[static_cast<size_t>(dim)] = k;
            acc += xv[static_cast<size_t>(ravel_broadcast(idx, s))];
          }
          ref[static_cast<size_t>(i)] = acc;
        }
        EXPECT_TRUE(all_close(y, ref, atol(dt) * 4, rtol(dt) * 4)) << "dim " << dim << " reverse " << reverse;
        EXPECT_EQ(values(ops::cumsum(x, dim - 3, reverse)), values(y));
      }
    EXPECT_EQ(values(ops::cumsum(Tensor::from<double>({1, 2, 3, 4}).to(dt), 0)), (std::vector<double>{1, 3, 6, 10}));
    EXPECT_EQ(values(ops::cumsum(Tensor::from<double>({1, 2, 3, 4}).to(dt), 0, true)),
              (std::vector<double>{10, 9, 7, 4}));
    EXPECT_EQ(values(ops::cumsum(Tensor::from<double>({5}, {1, 1}).to(dt), 1)), std::vector<double>{5});
  }
}

// ---- fills and copies through the op table ----

TEST(OpsFill, FillAndCopy) {
  for (DType dt : {DType::f32, DType::f64, DType::bf16, DType::i32, DType::i64, DType::u16}) {
    Tensor t = Tensor::empty({2, 3}, dt);
    ops::fill(t, 5);
    EXPECT_EQ(values(t), std::vector<double>(6, 5.0));
    Tensor u = Tensor::empty({6}, dt);
    ops::copy(u, t);
    EXPECT_EQ(values(u), std::vector<double>(6, 5.0));
  }
  // copy onto itself is a no-op.
  Tensor s = Tensor::arange(4, DType::f64);
  ops::copy(s, s);
  EXPECT_EQ(values(s), (std::vector<double>{0, 1, 2, 3}));
}

// ---- threaded paths ----

// Inputs above the kernels' parallel grain, with OpenMP forced to 3 threads
// (ctest runs with OMP_NUM_THREADS=1), against the same naive references.
TEST(OpsThreaded, LargeInputsAgreeWithNaive) {
  int saved = omp_get_max_threads();
  omp_set_num_threads(3);
  // Embedding backward: rows partitioned among threads by id.
  {
    int64_t n = 3000, d = 17, vocab = 101;
    std::vector<int64_t> idv(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) idv[static_cast<size_t>(i)] = (i * 37 + i / 7) % vocab;
    Tensor ids = Tensor::from(idv);
    Tensor dy = randn({n, d}, 90);
    std::vector<double> g = values(dy), ref(static_cast<size_t>(vocab * d), 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < d; ++j)
        ref[static_cast<size_t>(idv[static_cast<size_t>(i)] * d + j)] += g[static_cast<size_t>(i * d + j)];
    EXPECT_TRUE(all_close(ops::embedding_backward(ids, dy, vocab), ref, 1e-10, 1e-12));
  }
  // Layer norm backward: per-thread partial sums of dw and db.
  {
    Tensor x = randn({2001, 33}, 91), w = randn({33}, 92), b = randn({33}, 93), dy = randn({2001, 33}, 94);
    auto fwd = ops::layer_norm(x, w, b, 1e-5);
    auto g = ops::layer_norm_backward(x, w, fwd, dy, true);
    std::vector<double> dyv = values(dy), xv = values(x), mv = values(fwd.mean), rv = values(fwd.rstd);
    std::vector<double> dw(33, 0.0), db(33, 0.0);
    for (size_t r = 0; r < 2001; ++r)
      for (size_t j = 0; j < 33; ++j) {
        dw[j] += dyv[r * 33 + j] * (xv[r * 33 + j] - mv[r]) * rv[r];
        db[j] += dyv[r * 33 + j];
      }
    EXPECT_TRUE(all_close(g.dw, dw, 1e-9, 1e-9));
    EXPECT_TRUE(all_close(g.db, db, 1e-9, 1e-9));
  }
  // Cross-entropy's loss reduction and sum_all.
  {
    Tensor logits = randn({700, 61}, 95);
    std::vector<int64_t> tv(700);
    for (size_t i = 0; i < tv.size(); ++i) tv[i] = i % 9 == 0 ? -100 : static_cast<int64_t>((i * 13) % 61);
    ops::CrossEntropyOut ce = ops::cross_entropy(logits, Tensor::from(tv));
    auto rows = rows_of(logits);
    double total = 0;
    int64_t count = 0;
    for (size_t r = 0; r < rows.size(); ++r)
      if (tv[r] != -100) total -= log_softmax_row(rows[r])[static_cast<size_t>(tv[r])], ++count;
    EXPECT_EQ(ce.count, count);
    EXPECT_NEAR(ce.loss.item<double>(), total / static_cast<double>(count), 1e-10);
    Tensor big = randn({100003}, 96);
    double s = 0;
    for (double v : values(big)) s += v;
    EXPECT_NEAR(ops::sum_all(big).item<double>(), s, 1e-9);
  }
  // Batched matmul: one GEMM per thread.
  {
    Tensor a = randn({7, 5, 6}, 97), b = randn({7, 6, 3}, 98);
    EXPECT_TRUE(all_close(ops::matmul(a, b), matmul_ref(values(a), values(b), 7, 5, 3, 6, false, false, false),
                          1e-12, 1e-12));
  }
  omp_set_num_threads(saved);
}

TEST(OpsLayout, ConcatOfViews) {
  Tensor t = Tensor::arange(12, DType::f64).reshape({4, 3});
  Tensor c = ops::concat({t.slice(2, 4), t.slice(0, 1)}, 0);
  EXPECT_EQ(values(c), (std::vector<double>{6, 7, 8, 9, 10, 11, 0, 1, 2}));
  Tensor d = ops::concat({t.slice(1, 3), t.slice(0, 2)}, 1);
  EXPECT_EQ(values(d), (std::vector<double>{3, 4, 5, 0, 1, 2, 6, 7, 8, 3, 4, 5}));
  std::vector<Tensor> parts = ops::split(t.slice(1, 4), {2, 1}, 1);
  EXPECT_EQ(values(parts[1]), (std::vector<double>{5, 8, 11}));
}
