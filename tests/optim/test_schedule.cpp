// LR schedules at their key steps.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "optim/schedule.h"

using namespace attnlab;

TEST(Schedule, Constant) {
  LRSchedule s{ScheduleKind::constant, 1.0, 4, 0, 0.1, 0.2};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr_at(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(1000), 1.0);
  s.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 1.0);
}

TEST(Schedule, WarmupCosine) {
  LRSchedule s{ScheduleKind::cosine, 2.0, 10, 110, 0.1, 0.2};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.2);
  EXPECT_DOUBLE_EQ(s.lr_at(4), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 2.0);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 2.0);                  // the peak
  EXPECT_NEAR(s.lr_at(60), 0.2 + 0.5 * 1.8, 1e-12);   // halfway: the midpoint
  EXPECT_NEAR(s.lr_at(35), 0.2 + 1.8 * 0.5 * (1 + std::cos(std::numbers::pi / 4)), 1e-12);
  EXPECT_NEAR(s.lr_at(110), 0.2, 1e-12);              // the end: min_lr_ratio * lr
  EXPECT_NEAR(s.lr_at(500), 0.2, 1e-12);
  for (int64_t t = 10; t < 110; ++t) EXPECT_GE(s.lr_at(t), s.lr_at(t + 1));
}

TEST(Schedule, WarmupStableDecay) {
  LRSchedule s{ScheduleKind::wsd, 1.0, 10, 100, 0.0, 0.2};
  s.validate();
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(50), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(79), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(80), 1.0);  // the decay starts at total - 20
  EXPECT_NEAR(s.lr_at(90), 0.5, 1e-12);
  EXPECT_NEAR(s.lr_at(95), 0.25, 1e-12);
  EXPECT_NEAR(s.lr_at(100), 0.0, 1e-12);
  s.min_lr_ratio = 0.1;
  EXPECT_NEAR(s.lr_at(90), 0.55, 1e-12);
  EXPECT_NEAR(s.lr_at(200), 0.1, 1e-12);
}

TEST(Schedule, Errors) {
  EXPECT_EQ(parse_schedule_kind("wsd"), ScheduleKind::wsd);
  EXPECT_THROW(parse_schedule_kind("linear"), Error);
  EXPECT_THROW((LRSchedule{ScheduleKind::cosine, 1.0, 10, 10, 0.1, 0.2}.validate()), Error);
  EXPECT_THROW((LRSchedule{ScheduleKind::wsd, 1.0, 0, 10, 0.1, 0.0}.validate()), Error);
  EXPECT_THROW((LRSchedule{ScheduleKind::constant, 1.0, 0, 0, 1.5, 0.2}.validate()), Error);
}
