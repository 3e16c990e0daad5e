#pragma once
// Learning-rate schedules as a pure function of the step (0-based: the step
// about to be taken), so a resumed run gets the same rates.
//   every kind: linear warmup lr * (step + 1) / warmup_steps for step < warmup_steps
//   constant:   lr
//   cosine:     min + (lr - min) (1 + cos(pi p)) / 2, p = (step - warmup) / (total - warmup)
//   wsd:        warmup-stable-decay (Hu et al., "MiniCPM"): lr until the last
//               decay_fraction of total_steps, then linear down to min at total_steps
// min = min_lr_ratio * lr; past total_steps the rate stays at min.
#include <cstdint>
#include <string>

namespace attnlab {

enum class ScheduleKind { constant, cosine, wsd };
ScheduleKind parse_schedule_kind(const std::string& name);  // constant | cosine | wsd
const char* schedule_kind_name(ScheduleKind k);

struct LRSchedule {
  ScheduleKind kind = ScheduleKind::cosine;
  double lr = 6e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;     // cosine, wsd
  double min_lr_ratio = 0.1;   // cosine, wsd
  double decay_fraction = 0.2; // wsd

  double lr_at(int64_t step) const;
  void validate() const;  // throws attnlab::Error naming the bad field
};

}  // namespace attnlab
