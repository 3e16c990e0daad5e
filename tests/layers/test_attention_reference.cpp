// Every axis of the softmax module against the independent loop reference of
// attention_testing.h (written element by element from the papers' formulas).
#include <gtest/gtest.h>

#include "layers/attention/mask.h"
#include "layers/attention/scores.h"
#include "layers/testing.h"
#include "layers/attention_testing.h"

using namespace attnlab;
using namespace attnlab::attn_test;
using test_util::max_abs_diff;

TEST(AttentionVariants, MatchTheLoopReference) {
  uint64_t seed = 100;
  for (const auto& v : variants()) {
    if (v.o.kind != "softmax") continue;  // diff and moh have their own references
    for (bool bias : {true, false}) {
      auto a = make(v.o, seed++, bias);
      Tensor x = randn({2, 7, kC}, seed++);
      double err = max_abs_diff(a->forward(Var(x)).data(), reference(*a, x));
      EXPECT_LT(err, 1e-12) << v.name << (bias ? " (bias)" : "");
    }
  }
}

TEST(AttentionVariants, MobaChoosesBlocksByPooledKeys) {
  // Beyond the random case above: 4 blocks of 2 and k = 2, so each query past the
  // first block attends its own block plus exactly one earlier block.
  AttnOptions o = base(2, 1, PosKind::nope);
  o.mask = MaskKind::moba, o.moba_block = 2, o.moba_topk = 2;
  auto a = make(o, 7);
  Tensor x = randn({1, 8, kC}, 8);
  EXPECT_LT(max_abs_diff(a->forward(Var(x)).data(), reference(*a, x)), 1e-12);
}

TEST(AttentionVariants, LengthFactorsAreLogLengthOverLogTrainLength) {
  AttnOptions o = base();
  o.train_len = 8;
  auto f = length_factors(o, 3, 9, 6, DType::f64, Device::cpu()).to_vector<double>();
  ASSERT_EQ(f.size(), 3u);
  EXPECT_NEAR(f[0], std::log(7.0) / std::log(8.0), 1e-15);
  EXPECT_DOUBLE_EQ(f[1], 1.0);  // n = T_train
  EXPECT_NEAR(f[2], std::log(9.0) / std::log(8.0), 1e-15);
  o.mask = MaskKind::none;  // bidirectional: every query sees all Tk keys
  for (double x : length_factors(o, 3, 9, 0, DType::f64, Device::cpu()).to_vector<double>())
    EXPECT_NEAR(x, std::log(9.0) / std::log(8.0), 1e-15);
}
