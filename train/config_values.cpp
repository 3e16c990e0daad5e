#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "train/config_detail.h"

namespace attnlab::config {
namespace {

std::string_view trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string describe(const Where& w, std::string_view key, std::string_view value) {
  if (w.command_line) return detail::cat("command line --", key, "=", value);
  const std::string shown = value.empty() ? "(empty)" : std::string(value);
  if (w.line > 0) return detail::cat(w.source, ":", w.line, ": ", key, " = ", shown);
  return detail::cat(w.source, ": ", key, " = ", shown, " (default)");
}

void fail(const Where& w, std::string_view key, std::string_view value, std::string_view what) {
  throw Error(describe(w, key, value) + ": " + std::string(what));
}

std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    // A typed prefix ("warmup" for "warmup_steps") is as good as a near miss.
    if (word.size() >= 3 && (c.starts_with(word) || word.starts_with(c))) d = std::min<std::size_t>(d, 1);
    if (d < best_d) best_d = d, best = c;
  }
  const std::size_t limit = std::max<std::size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

std::string parse_float(std::string_view text, double& out) {
  if (text.starts_with('+')) text.remove_prefix(1);
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  if (text.empty() || ec == std::errc::invalid_argument || p != end) return "expected a number";
  if (ec == std::errc::result_out_of_range || !std::isfinite(out)) return "expected a finite number";
  return "";
}

std::string parse_int(std::string_view text, std::int64_t& out) {
  if (text.starts_with('+')) text.remove_prefix(1);
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, out);
  if (!text.empty() && ec == std::errc() && p == end) return "";
  // Accept integers written as floats, as in "steps = 1e5".
  double d = 0;
  if (!parse_float(text, d).empty()) return "expected an integer";
  if (d != std::floor(d) || std::fabs(d) > 9.0e15) return "expected an integer";
  out = static_cast<std::int64_t>(d);
  return "";
}

std::string parse_bool(std::string_view text, bool& out) {
  const std::string t = lower(text);
  if (t == "true" || t == "1" || t == "yes" || t == "on") {
    out = true;
    return "";
  }
  if (t == "false" || t == "0" || t == "no" || t == "off") {
    out = false;
    return "";
  }
  return "expected true or false";
}

std::string parse_string(std::string_view text, std::string& out) {
  // '#' would start a comment when the resolved config is written and read back.
  if (text.find_first_of("#\n\r") != std::string_view::npos) return "expected no '#' or line break";
  out = std::string(text);
  return "";
}

std::string parse_list(std::string_view text, std::vector<std::string>& out) {
  out.clear();
  std::size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const auto item = trim(text.substr(start, comma == std::string_view::npos ? text.npos : comma - start));
    if (item.empty() || item.find_first_of(" \t#=[]") != std::string_view::npos)
      return "expected a comma-separated list of names";
    out.emplace_back(item);
    if (comma == std::string_view::npos) return "";
    start = comma + 1;
  }
}

std::string format_value(int v) { return std::to_string(v); }
std::string format_value(std::int64_t v) { return std::to_string(v); }
std::string format_value(bool v) { return v ? "true" : "false"; }
std::string format_value(const std::string& v) { return v; }

std::string format_value(double v) {
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
  return std::string(buf, p);
}

std::string format_value(const std::vector<std::string>& v) {
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + v[i];
  return s;
}

}  // namespace attnlab::config
