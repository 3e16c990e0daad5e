// ops::linear / ag::linear: a Linear's GEMM with its bias and GELU epilogue.
// On the CPU it must equal the separate ops bit for bit (the layers switched
// to it); the float64 gradcheck covers the backward; CUDA parity skips without a device.
#include <gtest/gtest.h>

#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "core/cuda_testing.h"
#include "core/ops.h"
#include "test_util.h"

using namespace attnlab;

namespace {

Tensor uniform(const Shape& shape, uint64_t seed, DType dtype = DType::f32, Device device = Device::cpu()) {
  Tensor t = Tensor::empty(shape, dtype);
  ops::uniform(t, seed, 0, -1.0, 1.0);
  return t.to(device);
}

void expect_bits(const Tensor& got, const Tensor& want, const char* what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(got.to_vector<double>(), want.to_vector<double>()) << what;
}

}  // namespace

TEST(LinearFused, EqualsTheSeparateOpsOnTheCpu) {
  for (bool bias : {false, true})
    for (bool gelu : {false, true}) {
      SCOPED_TRACE(testing::Message() << "bias " << bias << " gelu " << gelu);
      Tensor x = uniform({2, 5, 6}, 1), w = uniform({7, 6}, 2), b = bias ? uniform({7}, 3) : Tensor();
      ops::LinearOut r = ops::linear(x, w, b, gelu);
      Tensor pre = ops::matmul(x, w, false, true);
      if (bias) pre = ops::add(pre, b);
      expect_bits(r.y, gelu ? ops::unary(UnaryOp::gelu_tanh, pre) : pre, "y");
      EXPECT_EQ(r.pre.defined(), gelu);
      if (gelu) expect_bits(r.pre, pre, "pre");
    }
}

TEST(LinearFused, MixedPrecisionTakesBf16OperandsAndF32Bias) {
  Tensor x = uniform({3, 4, 8}, 4), w = uniform({8, 8}, 5), b = uniform({8}, 6);
  Tensor x16 = x.to(DType::bf16), w16 = w.to(DType::bf16);
  ops::LinearOut r = ops::linear(x16, w16, b, true);
  Tensor pre = ops::add(ops::matmul_bf16_f32(x16, w16, false, true), b);
  expect_bits(r.pre, pre, "pre");
  expect_bits(r.y, ops::unary(UnaryOp::gelu_tanh, pre), "y");
  EXPECT_ERROR_MENTIONS(ops::linear(x16, w16, b.to(DType::f64), false), "linear", "bias", "must be f32 [8]");
  EXPECT_ERROR_MENTIONS(ops::linear(x, uniform({8, 5}, 7), Tensor(), false), "linear", "w [out, in]");
}

TEST(LinearFused, GradcheckF64) {
  for (bool bias : {false, true})
    for (bool gelu : {false, true}) {
      SCOPED_TRACE(testing::Message() << "bias " << bias << " gelu " << gelu);
      std::vector<Tensor> inputs{uniform({2, 3, 4}, 8, DType::f64), uniform({5, 4}, 9, DType::f64)};
      if (bias) inputs.push_back(uniform({5}, 10, DType::f64));
      GradcheckResult r = gradcheck(
          [&](const std::vector<Var>& v) { return ag::linear(v[0], v[1], bias ? v[2] : Var(), gelu); }, inputs);
      EXPECT_TRUE(r.ok) << r.message;
    }
}

TEST(LinearFused, BackwardEqualsTheSeparateFunctions) {
  // The layers switched from matmul + add + gelu to linear: the CPU gradients
  // must not move, in f32 and under autocast.
  for (bool autocast : {false, true}) {
    SCOPED_TRACE(testing::Message() << "autocast " << autocast);
    AutocastGuard guard(autocast);
    Tensor X = uniform({2, 3, 8}, 11), W = uniform({16, 8}, 12), B = uniform({16}, 13), G = uniform({2, 3, 16}, 14);
    Var x(X, true), w(W, true), b(B, true);
    ag::linear(x, w, b, true).backward(G);
    Var rx(X, true), rw(W, true), rb(B, true);
    ag::gelu(ag::add(ag::matmul(rx, rw, false, true), rb)).backward(G);
    expect_bits(x.grad(), rx.grad(), "dx");
    expect_bits(w.grad(), rw.grad(), "dw");
    expect_bits(b.grad(), rb.grad(), "db");
  }
}

TEST(LinearFusedCuda, EpilogueMatchesCpu) {
  SKIP_WITHOUT_CUDA();
  // 16 out-features take the GELU_AUX epilogue; 12 fall back (ld not a multiple of 8).
  for (int64_t out : {16, 12})
    for (DType dt : {DType::f32, DType::bf16})
      for (bool bias : {false, true})
        for (bool gelu : {false, true}) {
          SCOPED_TRACE(testing::Message() << "out " << out << " " << dtype_name(dt) << " bias " << bias
                                          << " gelu " << gelu);
          Tensor x = uniform({4, 32, 64}, 15), w = uniform({out, 64}, 16);
          Tensor b = bias ? uniform({out}, 17) : Tensor();
          Tensor xd = x.to(dt), wd = w.to(dt);  // bf16: the mixed-precision form, f32 bias and output
          ops::LinearOut want = ops::linear(xd, wd, b, gelu);
          ops::LinearOut got = ops::linear(xd.to(cuda_testing::kGpu), wd.to(cuda_testing::kGpu),
                                           bias ? b.to(cuda_testing::kGpu) : Tensor(), gelu);
          std::vector<float> g = got.y.to(Device::cpu()).to_vector<float>(), e = want.y.to_vector<float>();
          ASSERT_EQ(g.size(), e.size());
          for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], e[i], 1e-4f * (1.0f + std::abs(e[i]))) << i;
          if (gelu) {
            std::vector<float> gp = got.pre.to(Device::cpu()).to_vector<float>(), ep = want.pre.to_vector<float>();
            for (size_t i = 0; i < gp.size(); ++i) ASSERT_NEAR(gp[i], ep[i], 1e-4f * (1.0f + std::abs(ep[i]))) << i;
          }
        }
}
