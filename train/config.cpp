// Entry points: a config from a file, from text, or from defaults, each with overrides.
#include "train/config.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "train/config_detail.h"

namespace attnlab {

Config parse_config_text(std::string_view text, std::string_view name, const std::vector<std::string>& overrides) {
  config::Raw raw = config::read_ini(text, name);
  config::apply_overrides(raw, overrides);
  return config::build(raw);
}

Config load_config(const std::filesystem::path& file, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw Error(detail::cat("cannot open config file '", file.string(), "': it is a directory"));
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(detail::cat("cannot open config file '", file.string(), "': ", std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(detail::cat("cannot read config file '", file.string(), "'"));
  return parse_config_text(text.str(), file.string(), overrides);
}

Config default_config(const std::vector<std::string>& overrides) {
  return parse_config_text("", "defaults", overrides);
}

}  // namespace attnlab
