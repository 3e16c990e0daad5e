#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace attnlab {

ScheduleKind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return ScheduleKind::constant;
  if (name == "cosine") return ScheduleKind::cosine;
  if (name == "wsd") return ScheduleKind::wsd;
  throw Error(detail::cat("schedule: unknown kind '", name, "' (expected constant, cosine or wsd)"));
}

const char* schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::constant: return "constant";
    case ScheduleKind::cosine: return "cosine";
    case ScheduleKind::wsd: return "wsd";
  }
  return "?";
}

void LRSchedule::validate() const {
  ATTNLAB_CHECK(lr >= 0, "schedule: lr must be >= 0, got ", lr);
  ATTNLAB_CHECK(warmup_steps >= 0, "schedule: warmup_steps must be >= 0, got ", warmup_steps);
  ATTNLAB_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, "schedule: min_lr_ratio must be in [0, 1], got ",
                min_lr_ratio);
  if (kind != ScheduleKind::constant)
    ATTNLAB_CHECK(total_steps > warmup_steps, "schedule: ", schedule_kind_name(kind), " needs total_steps (",
                  total_steps, ") > warmup_steps (", warmup_steps, ")");
  if (kind == ScheduleKind::wsd)
    ATTNLAB_CHECK(decay_fraction > 0 && decay_fraction <= 1, "schedule: decay_fraction must be in (0, 1], got ",
                  decay_fraction);
}

double LRSchedule::lr_at(int64_t step) const {
  if (step < warmup_steps) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  const double min_lr = min_lr_ratio * lr;
  switch (kind) {
    case ScheduleKind::constant: return lr;
    case ScheduleKind::cosine: {
      double p = static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
      p = std::min(p, 1.0);
      return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * p)) * (lr - min_lr);
    }
    case ScheduleKind::wsd: {
      int64_t decay_steps = std::max<int64_t>(1, std::llround(decay_fraction * static_cast<double>(total_steps)));
      int64_t start = std::max(total_steps - decay_steps, warmup_steps);
      if (step < start) return lr;
      double p = std::min(1.0, static_cast<double>(step - start) / static_cast<double>(total_steps - start));
      return lr - (lr - min_lr) * p;
    }
  }
  return lr;
}

}  // namespace attnlab
