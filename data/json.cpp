#include "data/json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace attnlab {

const char* Json::kind_name(Kind k) {
  switch (k) {
    case Kind::null: return "null";
    case Kind::boolean: return "bool";
    case Kind::integer: return "integer";
    case Kind::real: return "number";
    case Kind::string: return "string";
    case Kind::array: return "array";
    case Kind::object: return "object";
  }
  return "?";
}

namespace {

[[noreturn]] void wrong_kind(const char* want, Json::Kind got) {
  throw Error(detail::cat("JSON: expected ", want, ", got ", Json::kind_name(got)));
}

}  // namespace

bool Json::as_bool() const {
  if (!is_bool()) wrong_kind("bool", kind());
  return std::get<bool>(v_);
}

int64_t Json::as_int() const {
  if (is_int()) return std::get<int64_t>(v_);
  if (kind() == Kind::real) {
    double d = std::get<double>(v_);
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if (std::isfinite(d) && d == std::floor(d) && d >= -9223372036854775808.0 &&
        d < 9223372036854775808.0)
      return static_cast<int64_t>(d);
    throw Error(detail::cat("JSON: expected integer, got ", d));
  }
  wrong_kind("integer", kind());
}

double Json::as_number() const {
  if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
  if (kind() == Kind::real) return std::get<double>(v_);
  wrong_kind("number", kind());
}

const std::string& Json::as_string() const {
  if (!is_string()) wrong_kind("string", kind());
  return std::get<std::string>(v_);
}

const Json::Array& Json::as_array() const {
  if (!is_array()) wrong_kind("array", kind());
  return std::get<Array>(v_);
}

Json::Array& Json::as_array() {
  if (!is_array()) wrong_kind("array", kind());
  return std::get<Array>(v_);
}

const Json::Object& Json::as_object() const {
  if (!is_object()) wrong_kind("object", kind());
  return std::get<Object>(v_);
}

Json::Object& Json::as_object() {
  if (!is_object()) wrong_kind("object", kind());
  return std::get<Object>(v_);
}

Json& Json::operator[](std::string_view key) {
  if (is_null()) v_ = Object{};
  Object& o = as_object();
  for (Member& m : o)
    if (m.first == key) return m.second;
  o.emplace_back(std::string(key), Json());
  return o.back().second;
}

const Json* Json::find(std::string_view key) const {
  for (const Member& m : as_object())
    if (m.first == key) return &m.second;
  return nullptr;
}

const Json& Json::at(std::string_view key) const {
  const Json* v = find(key);
  if (!v) throw Error(detail::cat("JSON: missing key \"", key, "\""));
  return *v;
}

const Json& Json::at(size_t i) const {
  const Array& a = as_array();
  if (i >= a.size())
    throw Error(detail::cat("JSON: index ", i, " out of range for array of ", a.size()));
  return a[i];
}

void Json::push_back(Json v) {
  if (is_null()) v_ = Array{};
  as_array().push_back(std::move(v));
}

size_t Json::size() const {
  if (is_array()) return std::get<Array>(v_).size();
  if (is_object()) return std::get<Object>(v_).size();
  return 0;
}

// ---- writing ----

void json_escape(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out += hex[u >> 4];
          out += hex[u & 15];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

namespace {

void dump_real(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "NaN";
  } else if (std::isinf(d)) {
    out += d > 0 ? "Infinity" : "-Infinity";
  } else {
    char buf[32];
    // Shortest text that reads back to the same double.
    auto r = std::to_chars(buf, buf + sizeof buf, d);
    std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
    out += s;
    // Keep it a real on the way back: "2" would parse as an integer.
    if (s.find_first_of(".eE") == std::string_view::npos) out += ".0";
  }
}

void dump_value(std::string& out, const Json& j, int indent, int depth) {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (j.kind()) {
    case Json::Kind::null: out += "null"; break;
    case Json::Kind::boolean: out += j.as_bool() ? "true" : "false"; break;
    case Json::Kind::integer: out += std::to_string(j.as_int()); break;
    case Json::Kind::real: dump_real(out, j.as_number()); break;
    case Json::Kind::string: json_escape(out, j.as_string()); break;
    case Json::Kind::array: {
      const Json::Array& a = j.as_array();
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        dump_value(out, a[i], indent, depth + 1);
      }
      if (!a.empty()) newline(depth);
      out += ']';
      break;
    }
    case Json::Kind::object: {
      const Json::Object& o = j.as_object();
      out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i) out += ',';
        newline(depth + 1);
        json_escape(out, o[i].first);
        out += indent < 0 ? ":" : ": ";
        dump_value(out, o[i].second, indent, depth + 1);
      }
      if (!o.empty()) newline(depth);
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string Json::dump(int indent) const {
  std::string out;
  dump_value(out, *this, indent, 0);
  return out;
}

// ---- parsing ----

namespace {

class Parser {
 public:
  Parser(std::string_view text, const std::string& source) : s_(text), source_(source) {}

  Json parse_document() {
    skip_ws();
    Json v = parse_value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 512;

  [[noreturn]] void fail(const std::string& what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw Error(detail::cat(source_, ": JSON error at line ", line, " col ", col, ": ", what));
  }

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return at_end() ? '\0' : s_[pos_]; }

  void skip_ws() {
    while (!at_end() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool consume_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  void expect(char c) {
    if (peek() != c) fail(detail::cat("expected '", c, "'"));
    ++pos_;
  }

  Json parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting too deep");
    if (at_end()) fail("unexpected end of input");
    char c = peek();
    switch (c) {
      case '{': return parse_object(depth);
      case '[': return parse_array(depth);
      case '"': return Json(parse_string());
      case 't':
        if (consume_word("true")) return Json(true);
        break;
      case 'f':
        if (consume_word("false")) return Json(false);
        break;
      case 'n':
        if (consume_word("null")) return Json();
        break;
      case 'N':
        if (consume_word("NaN")) return Json(std::nan(""));
        break;
      case 'I':
        if (consume_word("Infinity")) return Json(HUGE_VAL);
        break;
      default:
        if (c == '-' || (c >= '0' && c <= '9')) return parse_number();
    }
    fail("unexpected character");
  }

  Json parse_object(int depth) {
    expect('{');
    Json obj = Json::object();
    Json::Object& members = obj.as_object();
    skip_ws();
    if (peek() == '}') {
      ++pos_;
      return obj;
    }
    while (true) {
      skip_ws();
      if (peek() != '"') fail("expected a string key");
      std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      Json v = parse_value(depth + 1);
      bool replaced = false;
      for (Json::Member& m : members)
        if (m.first == key) m.second = std::move(v), replaced = true;
      if (!replaced) members.emplace_back(std::move(key), std::move(v));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect('}');
      return obj;
    }
  }

  Json parse_array(int depth) {
    expect('[');
    Json arr = Json::array();
    Json::Array& items = arr.as_array();
    skip_ws();
    if (peek() == ']') {
      ++pos_;
      return arr;
    }
    while (true) {
      skip_ws();
      items.push_back(parse_value(depth + 1));
      skip_ws();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      expect(']');
      return arr;
    }
  }

  Json parse_number() {
    size_t start = pos_;
    if (consume_word("-Infinity")) return Json(-HUGE_VAL);
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') ++pos_;
    } else {
      fail("bad number");
    }
    bool real = false;
    if (peek() == '.') {
      real = true;
      ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("bad number: digit expected after '.'");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      real = true;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!(peek() >= '0' && peek() <= '9')) fail("bad number: digit expected in exponent");
      while (peek() >= '0' && peek() <= '9') ++pos_;
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + pos_;
    if (!real) {
      int64_t i = 0;
      auto r = std::from_chars(b, e, i);
      if (r.ec == std::errc() && r.ptr == e) return Json(i);
      // Too big for int64: fall through and keep it as a real.
    }
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ptr != e) fail("bad number");
    // from_chars reports out-of-range for huge or tiny magnitudes; use strtod's answer (inf or 0).
    if (r.ec == std::errc::result_out_of_range) d = std::strtod(std::string(b, e).c_str(), nullptr);
    return Json(d);
  }

  static void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t parse_hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    while (true) {
      if (at_end()) fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (at_end()) fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = parse_hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            uint32_t lo = parse_hex4();
            if (lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;  // a lone high surrogate; the next escape stands alone
            }
          }
          append_utf8(out, cp);
          break;
        }
        default: --pos_; fail("bad escape in string");
      }
    }
  }

  std::string_view s_;
  const std::string& source_;
  size_t pos_ = 0;
};

}  // namespace

Json Json::parse(std::string_view text, const std::string& source) {
  return Parser(text, source).parse_document();
}

}  // namespace attnlab
