// Global-norm gradient clipping.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "optim/clip.h"

using namespace attnlab;

namespace {
Var with_grad(std::vector<double> g, DType dt) {
  Var v(Tensor::zeros({static_cast<int64_t>(g.size())}, dt), true);
  v.grad() = Tensor::from(g).to(dt);
  return v;
}
}  // namespace

TEST(Clip, ScalesTheGlobalNormToTheMax) {
  for (DType dt : {DType::f32, DType::f64}) {
    Var a = with_grad({3, 0}, dt), b = with_grad({0, 4, 0}, dt);  // global norm 5
    Var none(Tensor::zeros({2}, dt), true);                        // no gradient: ignored
    std::vector<Var> ps = {a, b, none};
    EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-6);
    EXPECT_NEAR(grad_norm(ps), 1.0, 1e-6);
    EXPECT_NEAR(a.grad().to_vector<double>()[0], 0.6, 1e-6);  // direction kept
    EXPECT_NEAR(b.grad().to_vector<double>()[1], 0.8, 1e-6);
  }
}

TEST(Clip, LeavesSmallOrNonFiniteGradientsAlone) {
  Var a = with_grad({0.3, 0.4}, DType::f64);
  EXPECT_NEAR(clip_grad_norm({a}, 1.0), 0.5, 1e-15);
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{0.3, 0.4}));
  Var n = with_grad({std::numeric_limits<double>::infinity(), 1.0}, DType::f64);
  EXPECT_FALSE(std::isfinite(clip_grad_norm({n}, 1.0)));
  EXPECT_EQ(n.grad().to_vector<double>()[1], 1.0);
  EXPECT_THROW(clip_grad_norm({a}, 0.0), Error);
}
