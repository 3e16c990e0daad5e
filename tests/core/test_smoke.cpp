#include <gtest/gtest.h>

#include "core/ops.h"

using namespace attnlab;

TEST(Smoke, MatmulSmall) {
  Tensor a = Tensor::from<float>({1, 2, 3, 4}, {2, 2});
  Tensor b = Tensor::from<float>({5, 6, 7, 8}, {2, 2});
  auto c = ops::matmul(a, b).to_vector<float>();
  EXPECT_EQ(c, (std::vector<float>{19, 22, 43, 50}));
}
