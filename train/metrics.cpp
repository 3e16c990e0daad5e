#include "train/metrics.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/file_io.h"

namespace attnlab {

MetricsWriter::MetricsWriter(const std::string& path, int64_t keep_through_step) : path_(path) {
  if (keep_through_step >= 0 && std::filesystem::exists(path)) {
    std::istringstream in(read_file(path));
    std::string kept, line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      Json row = Json::parse(line, path);
      if (row.contains("step") && row["step"].as_int() <= keep_through_step) kept += line + "\n";
    }
    write_file_atomic(path, kept);
  }
  f_ = std::fopen(path.c_str(), keep_through_step >= 0 ? "a" : "w");
  ATTNLAB_CHECK(f_, "metrics: cannot open ", path, " for writing");
}

MetricsWriter::~MetricsWriter() {
  if (f_) std::fclose(f_);
}

void MetricsWriter::write(const Json& row) {
  std::string line = row.dump() + "\n";
  ATTNLAB_CHECK(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fflush(f_) == 0,
                "metrics: cannot write ", path_);
}

}  // namespace attnlab
