// Every attention variant (attention_testing.h's table): float64 gradcheck of
// the module w.r.t. its input and every parameter, causality, and cached
// decoding equal to the full forward.
#include <gtest/gtest.h>

#include "core/ops.h"
#include "layers/attention_testing.h"
#include "layers/testing.h"

using namespace attnlab;
using namespace attnlab::attn_test;
using test_util::gradcheck_module;
using test_util::max_abs_diff;

TEST(AttentionVariants, Gradcheck) {
  uint64_t seed = 200;
  for (const auto& v : variants()) {
    auto a = make(v.o, seed++);
    auto r = gradcheck_module(*a, names_of(*a), {randn({2, 5, kC}, seed++)}, [&](auto& in) { return a->forward(in[0]); });
    EXPECT_TRUE(r.ok) << v.name << ": " << r.message;
  }
}

TEST(AttentionVariants, CausalFutureDoesNotChangeThePast) {
  uint64_t seed = 300;
  for (const auto& v : variants()) {
    if (!is_causal(v.o.mask)) continue;
    auto a = make(v.o, seed++);
    const int64_t T = 7, changed = 4;
    Tensor x = randn({1, T, kC}, seed++);
    Tensor y0 = a->forward(Var(x)).data();
    Tensor x2 = x.clone();
    double* p = x2.data<double>();
    for (int64_t c = 0; c < kC; ++c) p[changed * kC + c] += 1.0;
    Tensor y1 = a->forward(Var(x2)).data();
    auto A = y0.to_vector<double>(), Bv = y1.to_vector<double>();
    for (int64_t i = 0; i < changed * kC; ++i) ASSERT_EQ(A[i], Bv[i]) << v.name << " element " << i;
    double later = 0;
    for (int64_t i = changed * kC; i < T * kC; ++i) later = std::max(later, std::abs(A[i] - Bv[i]));
    EXPECT_GT(later, 1e-6) << v.name;
  }
}

TEST(AttentionVariants, BidirectionalSeesTheFuture) {
  AttnOptions o = base();
  o.mask = MaskKind::none;
  auto a = make(o, 1);
  Tensor x = randn({1, 5, kC}, 2);
  Tensor x2 = x.clone();
  x2.data<double>()[4 * kC] += 1.0;
  auto A = a->forward(Var(x)).data().to_vector<double>(), Bv = a->forward(Var(x2)).data().to_vector<double>();
  EXPECT_GT(std::abs(A[0] - Bv[0]), 1e-9);
}

TEST(AttentionVariants, KVCacheStepsEqualTheFullForward) {
  uint64_t seed = 400;
  for (const auto& v : variants()) {
    if (!is_causal(v.o.mask)) continue;
    auto a = make(v.o, seed++);
    const int64_t T = 8;
    Tensor x = randn({2, T, kC}, seed++);
    Tensor full = a->forward(Var(x)).data();
    // Prefill 3 positions at once, then 2, then one at a time.
    NoGradGuard no_grad;
    AttnCache cache;
    std::vector<Tensor> parts;
    for (const Tensor& c : ops::split(x, {3, 2, 1, 1, 1}, 1)) parts.push_back(a->forward_step(Var(c), cache).data());
    EXPECT_EQ(cache.pos, T) << v.name;
    EXPECT_LT(max_abs_diff(ops::concat(parts, 1), full), 1e-12) << v.name;
  }
}

TEST(AttentionVariants, BidirectionalDecodingIsAClearError) {
  AttnOptions o = base();
  o.mask = MaskKind::none;
  auto a = make(o, 3);
  AttnCache cache;
  try {
    a->forward_step(Var(randn({1, 2, kC}, 4)), cache);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mask = none"), std::string::npos) << e.what();
  }
}
