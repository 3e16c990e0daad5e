#pragma once
#include <chrono>
#include <cstdint>

namespace attnlab {

// The one-line console display of a run: step/total, loss, val loss, tok/s, ETA.
// On a terminal the line is redrawn every step; otherwise one line is printed
// per logged step, so logs stay readable.
class Progress {
 public:
  Progress(int64_t total_steps, bool quiet);
  void update(int64_t step, double loss, double val_loss, double tokens_per_s, bool logged);
  void finish();

 private:
  int64_t total_;
  bool quiet_, tty_;
  bool open_line_ = false;
  int64_t first_step_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace attnlab
