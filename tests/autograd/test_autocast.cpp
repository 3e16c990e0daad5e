// bf16 mixed precision (autograd/autocast.h): under an AutocastGuard ag::matmul
// multiplies bf16-rounded operands with f32 accumulation, forward and backward.
#include <gtest/gtest.h>

#include "autograd/attention.h"
#include "autograd/autocast.h"
#include "autograd/functions.h"
#include "core/cuda_testing.h"
#include "core/ops.h"
#include "test_util.h"

using namespace attnlab;

namespace {

Tensor uniform(const Shape& shape, uint64_t seed) {
  Tensor t = Tensor::empty(shape);
  ops::uniform(t, seed, 0, -1.0, 1.0);
  return t;
}

// x rounded to bf16 and back: what the mixed GEMM sees.
Tensor rounded(const Tensor& x) { return x.to(DType::bf16).to(DType::f32); }

void expect_equal(const Tensor& got, const Tensor& want, const char* what) {
  ASSERT_EQ(got.dtype(), DType::f32) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  std::vector<float> g = got.to_vector<float>(), w = want.to_vector<float>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], w[i]) << what << " [" << i << "]";
}

}  // namespace

TEST(Autocast, MatmulBf16F32MultipliesTheRoundedOperandsInF32) {
  Tensor a = uniform({2, 5, 7}, 1), b = uniform({7, 3}, 2);
  Tensor got = ops::matmul_bf16_f32(a.to(DType::bf16), b.to(DType::bf16));
  // bf16 x bf16 products are exact in f32, so the CPU result is the f32 GEMM of
  // the rounded operands, bit for bit.
  expect_equal(got, ops::matmul(rounded(a), rounded(b)), "a b");
  expect_equal(ops::matmul_bf16_f32(a.to(DType::bf16), b.to(DType::bf16).reshape({3, 7}), false, true),
               ops::matmul(rounded(a), rounded(b).reshape({3, 7}), false, true), "a b^T");
}

TEST(Autocast, MatmulBf16F32RejectsOtherDtypes) {
  Tensor a = uniform({4, 4}, 1);
  EXPECT_ERROR_MENTIONS(ops::matmul_bf16_f32(a, a.to(DType::bf16)), "matmul_bf16_f32", "a must be bf16");
  EXPECT_ERROR_MENTIONS(ops::matmul_bf16_f32(a.to(DType::bf16), a), "matmul_bf16_f32", "b must be bf16");
  EXPECT_ERROR_MENTIONS(ops::matmul_bf16_f32(a.to(DType::bf16), uniform({5, 4}, 2).to(DType::bf16)),
                        "matmul_bf16_f32", "inner dims differ");
}

TEST(Autocast, MatmulForwardAndGradientsUseBf16Operands) {
  // The four transpose cases, and a batched a against a shared 2-D b (a Linear).
  struct Case {
    Shape a, b;
    bool ta, tb;
  };
  for (const Case& c : {Case{{2, 4, 6}, {2, 6, 5}, false, false}, Case{{2, 6, 4}, {2, 6, 5}, true, false},
                        Case{{2, 4, 6}, {2, 5, 6}, false, true}, Case{{2, 6, 4}, {2, 5, 6}, true, true},
                        Case{{3, 4, 6}, {5, 6}, false, true}}) {
    SCOPED_TRACE(testing::Message() << "ta=" << c.ta << " tb=" << c.tb << " b dims " << c.b.size());
    Tensor A = uniform(c.a, 3), B = uniform(c.b, 4);
    Var a(A, true), b(B, true);
    Var y;
    {
      AutocastGuard bf16(true);
      EXPECT_TRUE(autocast_bf16());
      y = ag::matmul(a, b, c.ta, c.tb);
    }
    EXPECT_FALSE(autocast_bf16());  // the guard restores the previous state
    Tensor dy = uniform(y.shape(), 5);
    y.backward(dy);  // outside the guard: the node remembers it was mixed

    // Reference: the same products in f32 on rounded operands and gradient.
    Var ra(rounded(A), true), rb(rounded(B), true);
    Var ry = ag::matmul(ra, rb, c.ta, c.tb);
    ry.backward(rounded(dy));
    expect_equal(y.data(), ry.data(), "y");
    // The backward's f32 accumulation order may differ from the reference's
    // (a folded batch), so compare to float rounding.
    std::vector<float> ga = a.grad().to_vector<float>(), wa = ra.grad().to_vector<float>();
    std::vector<float> gb = b.grad().to_vector<float>(), wb = rb.grad().to_vector<float>();
    for (size_t i = 0; i < ga.size(); ++i) EXPECT_NEAR(ga[i], wa[i], 1e-5f) << "da " << i;
    for (size_t i = 0; i < gb.size(); ++i) EXPECT_NEAR(gb[i], wb[i], 1e-5f) << "db " << i;
  }
}

TEST(Autocast, LeavesF64AndUnguardedMatmulsExact) {
  Tensor A = uniform({3, 4}, 6), B = uniform({4, 2}, 7);
  Var a(A.to(DType::f64), true), b(B.to(DType::f64), true);
  AutocastGuard bf16(true);
  Var y = ag::matmul(a, b);  // f64 (gradchecks) is never rounded
  EXPECT_EQ(y.dtype(), DType::f64);
  {
    AutocastGuard off(false);
    Tensor y32 = ag::matmul(Var(A), Var(B)).data();
    expect_equal(y32, ops::matmul(A, B), "unguarded f32");
  }
}

TEST(AutocastCuda, FlashAttentionRunsInBf16AndReturnsF32) {
  SKIP_WITHOUT_CUDA();
  const Device gpu = cuda_testing::kGpu;
  Tensor Q = uniform({2, 4, 40, 32}, 8).to(gpu), K = uniform({2, 2, 40, 32}, 9).to(gpu),
         V = uniform({2, 2, 40, 32}, 10).to(gpu), G = uniform({2, 4, 40, 32}, 11).to(gpu);
  FlashAttentionParams p;
  auto run = [&](bool bf16) {
    AutocastGuard guard(bf16);
    Var q(Q, true), k(K, true), v(V, true);
    Var out = ag::flash_attention(q, k, v, p);
    out.backward(G);
    return std::vector<Tensor>{out.data(), q.grad(), k.grad(), v.grad()};
  };
  std::vector<Tensor> f32 = run(false), mixed = run(true);
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (size_t i = 0; i < f32.size(); ++i) {
    ASSERT_EQ(mixed[i].dtype(), DType::f32) << names[i];
    std::vector<float> a = mixed[i].to(Device::cpu()).to_vector<float>();
    std::vector<float> b = f32[i].to(Device::cpu()).to_vector<float>();
    double diff = 0, scale = 0;
    for (size_t j = 0; j < a.size(); ++j) {
      diff = std::max(diff, static_cast<double>(std::abs(a[j] - b[j])));
      scale = std::max(scale, static_cast<double>(std::abs(b[j])));
    }
    EXPECT_LT(diff, 2e-2 * scale) << names[i] << ": bf16 inputs are 8-bit mantissas";
    EXPECT_GT(diff, 0.0) << names[i] << ": autocast did not reach the kernel";
  }
}
