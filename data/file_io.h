#pragma once
#include <string>
#include <string_view>

namespace attnlab {

// Whole-file helpers. Errors are attnlab::Error naming the path.

std::string read_file(const std::string& path);

// Writes to `path + ".tmp"` and renames it over `path`, so a reader (or a crash)
// sees either the old file or the whole new one, never a torn one.
void write_file_atomic(const std::string& path, std::string_view bytes);

// The temporary name used by atomic writes, and the rename that publishes it.
// For writers that produce the file through another library (HDF5).
std::string tmp_path_for(const std::string& path);
void publish_tmp(const std::string& path);  // renames tmp_path_for(path) to path

}  // namespace attnlab
