#include "data/file_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "core/error.h"

namespace attnlab {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(detail::cat(path, ": no such file"));
  if (fs::is_directory(path, ec)) throw Error(detail::cat(path, ": is a directory, expected a file"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(detail::cat(path, ": cannot open for reading: ", std::strerror(errno)));
  std::string data;
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  in.seekg(0, std::ios::beg);
  if (size > 0) {
    data.resize(static_cast<size_t>(size));
    in.read(data.data(), size);
  }
  if (!in) throw Error(detail::cat(path, ": read failed"));
  return data;
}

std::string tmp_path_for(const std::string& path) { return path + ".tmp"; }

void publish_tmp(const std::string& path) {
  std::error_code ec;
  fs::rename(tmp_path_for(path), path, ec);
  if (ec) {
    fs::remove(tmp_path_for(path), ec);
    throw Error(detail::cat(path, ": cannot rename the finished ", tmp_path_for(path), " into place"));
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  const std::string tmp = tmp_path_for(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error(detail::cat(path, ": cannot open for writing: ", std::strerror(errno)));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error(detail::cat(path, ": write failed (disk full?)"));
    }
  }
  publish_tmp(path);
}

}  // namespace attnlab
