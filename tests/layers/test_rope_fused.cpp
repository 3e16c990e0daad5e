// The fused RoPE op (ops::rope, core/cpu/rope.cpp and core/cuda/rope.cu)
// against the composed split / mul / sub / add / concat formula it replaced
// (kept here as the reference), its inverse, a float64 gradcheck of the
// autograd function, the CUDA kernel against the CPU, and bad shapes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "core/cuda_testing.h"
#include "core/ops.h"
#include "layers/attention/rope.h"
#include "layers/testing.h"
#include "test_util.h"

using namespace attnlab;
using test_util::randn;

namespace {

// The composition rope_rotate used before the fused op: y1 = x1 cos - x2 sin,
// y2 = x2 cos + x1 sin, y3 = x3.
Tensor composed_rope(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  int64_t d = x.size(-1), h = cos.size(-1), rot = 2 * h;
  std::vector<Tensor> parts = rot == d ? ops::split(x, {h, h}, -1) : ops::split(x, {h, h, d - rot}, -1);
  Tensor x1 = parts[0], x2 = parts[1];
  parts[0] = ops::sub(ops::mul(x1, cos), ops::mul(x2, sin));
  parts[1] = ops::add(ops::mul(x2, cos), ops::mul(x1, sin));
  return ops::concat(parts, -1);
}

struct Case {
  Shape x;
  int64_t rot;  // rotated dims r
};
// Full and partial rotation, odd pass-through widths, no leading dims, T = 1.
const std::vector<Case> kCases = {{{2, 3, 5, 8}, 8}, {{2, 3, 5, 8}, 4}, {{4, 7}, 2}, {{3, 1, 6}, 6}, {{2, 9, 10}, 4}};

std::pair<Tensor, Tensor> tables(const Case& c, DType dt, int64_t pos0 = 3) {
  RopeTable table(c.rot, 100.0);
  return table.rows(pos0, c.x[c.x.size() - 2], dt, Device::cpu());
}

}  // namespace

TEST(RopeFused, EqualsTheComposedFormula) {
  for (DType dt : {DType::f64, DType::f32})
    for (const Case& c : kCases) {
      Tensor x = randn(c.x, 5).to(dt);
      auto [cs, sn] = tables(c, dt);
      const std::string what = shape_str(c.x) + " r=" + std::to_string(c.rot) + " " + dtype_name(dt);
      double tol = dt == DType::f64 ? 1e-15 : 1e-6;  // to rounding: the fused loop may use FMAs
      cuda_testing::expect_close(ops::rope(x, cs, sn), composed_rope(x, cs, sn), tol, tol, what);
      // The inverse is the rotation by the negated angle.
      cuda_testing::expect_close(ops::rope(x, cs, sn, true), composed_rope(x, cs, ops::scale(sn, -1.0)), tol, tol,
                                 what + " inverse");
      cuda_testing::expect_close(ops::rope(ops::rope(x, cs, sn), cs, sn, true), x, 4 * tol, 4 * tol,
                                 what + " round trip");
      // rope_rotate is the fused op.
      cuda_testing::expect_bits_equal(rope_rotate(x, cs, sn), ops::rope(x, cs, sn), what + " rope_rotate");
    }
}

TEST(RopeFused, PassThroughDimsAreCopiedExactly) {
  Case c{{2, 5, 7}, 4};
  Tensor x = randn(c.x, 9);
  auto [cs, sn] = tables(c, DType::f64);
  auto X = x.to_vector<double>(), Y = ops::rope(x, cs, sn).to_vector<double>();
  for (size_t r = 0; r < X.size() / 7; ++r)
    for (size_t j = 4; j < 7; ++j) EXPECT_EQ(Y[r * 7 + j], X[r * 7 + j]);
}

TEST(RopeFused, Gradcheck) {
  for (const Case& c : kCases) {
    auto [cs, sn] = tables(c, DType::f64);
    auto r = gradcheck([&](auto& v) { return rope(v[0], cs, sn); }, {randn(c.x, 17)});
    EXPECT_TRUE(r.ok) << shape_str(c.x) << " r=" << c.rot << ": " << r.message;
  }
}

TEST(RopeFused, BadTablesAreOneClearError) {
  Tensor x = randn({2, 5, 6}, 1);
  auto [cs, sn] = tables({{2, 5, 6}, 6}, DType::f64);
  EXPECT_ERROR_MENTIONS(ops::rope(x, cs.slice(0, 4), sn.slice(0, 4)), "rope: tables", "do not match x");
  auto [c8, s8] = tables({{2, 5, 8}, 8}, DType::f64);
  EXPECT_ERROR_MENTIONS(ops::rope(x, c8, s8), "rope: tables", "h <= D / 2");
  EXPECT_ERROR_MENTIONS(ops::rope(x, cs.to(DType::f32), sn.to(DType::f32)), "rope");
  EXPECT_ERROR_MENTIONS(ops::rope(x, cs, sn.slice(0, 4)), "rope");
}

TEST(RopeFused, CudaMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  using cuda_testing::kGpu;
  for (const Case& c : kCases) {
    const std::string what = shape_str(c.x) + " r=" + std::to_string(c.rot);
    for (DType dt : {DType::f32, DType::f64}) {
      Tensor x = randn(c.x, 23).to(dt);
      auto [cs, sn] = tables(c, dt);
      for (bool inverse : {false, true}) {
        Tensor got = ops::rope(x.to(kGpu), cs.to(kGpu), sn.to(kGpu), inverse);
        ASSERT_TRUE(got.device().is_cuda());
        double tol = dt == DType::f64 ? 1e-15 : 1e-6;
        cuda_testing::expect_close(got, ops::rope(x, cs, sn, inverse), tol, tol, what + " " + dtype_name(dt));
        // The GPU has no FMAs here: exactly the composed formula.
        if (!inverse)
          cuda_testing::expect_bits_equal(got.to(Device::cpu()), composed_rope(x, cs, sn), what + " composed");
      }
    }
    // bf16: computed in float on the same rounded inputs, rounded once.
    Tensor x = randn(c.x, 29).to(DType::bf16).to(DType::f32);
    auto [cs, sn] = tables(c, DType::f32);
    cs = cs.to(DType::bf16);
    sn = sn.to(DType::bf16);
    Tensor got = ops::rope(x.to(DType::bf16).to(kGpu), cs.to(kGpu), sn.to(kGpu)).to(DType::f32);
    Tensor want = ops::rope(x, cs.to(DType::f32), sn.to(DType::f32));
    cuda_testing::expect_close(got, want, 1e-2, 1e-2, what + " bf16");
  }
}

TEST(RopeFused, CudaAutogradMatchesTheCpu) {
  SKIP_WITHOUT_CUDA();
  using cuda_testing::kGpu;
  Case c{{2, 3, 5, 8}, 4};
  auto [cs, sn] = tables(c, DType::f32);
  Tensor x0 = randn(c.x, 31).to(DType::f32), dy = randn(c.x, 37).to(DType::f32);
  Var xc(x0, true), xg(x0.to(kGpu), true);
  rope(xc, cs, sn).backward(dy);
  rope(xg, cs.to(kGpu), sn.to(kGpu)).backward(dy.to(kGpu));
  cuda_testing::expect_close(xg.grad(), xc.grad(), 1e-6, 1e-6, "rope backward");
}
