#include "train/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <string>

namespace attnlab {

namespace {
std::string duration(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, t / 60 % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  return buf;
}
}  // namespace

Progress::Progress(int64_t total_steps, bool quiet)
    : total_(total_steps), quiet_(quiet), tty_(isatty(STDOUT_FILENO)), start_(std::chrono::steady_clock::now()) {}

void Progress::update(int64_t step, double loss, double val_loss, double tokens_per_s, bool logged) {
  if (quiet_ || (!tty_ && !logged)) return;
  if (first_step_ < 0) {
    first_step_ = step - 1;
    start_ = std::chrono::steady_clock::now();
  }
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double per_step = elapsed / static_cast<double>(std::max<int64_t>(step - first_step_, 1));
  char val[32] = "";
  if (!std::isnan(val_loss)) std::snprintf(val, sizeof val, " | val %.4f", val_loss);
  std::printf("%sstep %lld/%lld | loss %.4f%s | %.0f tok/s | ETA %s%s", tty_ ? "\r\033[K" : "",
              static_cast<long long>(step), static_cast<long long>(total_), loss, val, tokens_per_s,
              duration(per_step * static_cast<double>(total_ - step)).c_str(), tty_ ? "" : "\n");
  std::fflush(stdout);
  open_line_ = tty_;
}

void Progress::finish() {
  if (open_line_) std::printf("\n");
  open_line_ = false;
}

}  // namespace attnlab
