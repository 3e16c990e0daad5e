#pragma once
// metrics.jsonl: one JSON object per logged step (DESIGN.md "Interfaces").
// Plots and ablation tables read only this file.
#include <cstdio>
#include <string>

#include "data/json.h"

namespace attnlab {

class MetricsWriter {
 public:
  MetricsWriter() = default;
  // Opens `path`; with `keep_through_step` >= 0 (a resumed run) the lines of
  // steps after it are dropped first, so a resumed run's file reads as one run.
  MetricsWriter(const std::string& path, int64_t keep_through_step);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  void write(const Json& row);  // one line, flushed

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace attnlab
