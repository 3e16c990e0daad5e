#pragma once
// Internals shared by the config sources: where a value came from, the raw (text)
// config between reading and validation, and typed conversion of values.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "train/config.h"
#include "train/config_schema.h"

namespace attnlab::config {

struct Where {
  std::string source;  // file name (or the name given for in-memory text)
  int line = 0;        // > 0: set on this line of the file
  bool command_line = false;

  bool is_default() const { return line == 0 && !command_line; }
};

struct RawValue {
  std::string text;
  Where where;
};

// A config as text, keyed by full name ("optim.lr", "attn.local.window").
struct Raw {
  std::string source;
  std::map<std::string, RawValue> values;
  std::vector<std::string> attn;  // names of the [attn.NAME] sections, first seen first
};

// "f.ini:12: optim.lr = abc", "command line --optim.lr=abc", "f.ini: optim.lr = 3 (default)"
std::string describe(const Where& w, std::string_view key, std::string_view value);

[[noreturn]] void fail(const Where& w, std::string_view key, std::string_view value, std::string_view what);

// The closest candidate by edit distance, or "" when none is near enough to suggest.
std::string closest(std::string_view word, const std::vector<std::string>& candidates);

// Checks a full key name ("optim.lr", "attn.x.window") against the schema; throws an
// unknown-section or unknown-key error (with a suggestion) citing `w` and `value`.
void check_key(std::string_view full, std::string_view value, const Where& w);

// Accepts "model", "optim", "data", "train" and "attn.NAME" with a valid NAME; throws
// an unknown-section error citing the header otherwise.
void check_section(std::string_view name, const Where& w);

// Reads INI text into `raw` (pre-pass for line numbers, then Boost.Program_options).
Raw read_ini(std::string_view text, std::string_view source);

// Applies --section.key=value arguments; later ones win.
void apply_overrides(Raw& raw, const std::vector<std::string>& args);

// Validates types, ranges and cross-key constraints, resolves derived defaults.
Config build(const Raw& raw);

// Typed conversion. Each returns "" on success, else what was expected.
std::string parse_int(std::string_view text, std::int64_t& out);
std::string parse_float(std::string_view text, double& out);
std::string parse_bool(std::string_view text, bool& out);
std::string parse_list(std::string_view text, std::vector<std::string>& out);
std::string parse_string(std::string_view text, std::string& out);

std::string format_value(int v);
std::string format_value(std::int64_t v);
std::string format_value(double v);
std::string format_value(bool v);
std::string format_value(const std::string& v);
std::string format_value(const std::vector<std::string>& v);

}  // namespace attnlab::config
