#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace attnlab {

// A small JSON value: null, bool, integer, real, string, array, object.
// Objects keep their keys in insertion order, so a written metrics line reads
// in the order its fields were set. Integers are kept apart from reals so that
// step counts and token ids survive a round trip exactly.
//
// Non-finite reals are written as NaN / Infinity / -Infinity (what Python's
// json module reads and writes) and parsed back; everything else is strict JSON.
//
//   Json j = Json::object();
//   j["step"] = 10;
//   j["loss"] = 3.25;
//   j["tags"] = Json::array({"a", "b"});
//   std::string line = j.dump();          // {"step":10,"loss":3.25,"tags":["a","b"]}
//   Json k = Json::parse(line, "metrics.jsonl:3");
//   int64_t step = k.at("step").as_int();
class Json {
 public:
  enum class Kind : uint8_t { null, boolean, integer, real, string, array, object };
  using Array = std::vector<Json>;
  using Member = std::pair<std::string, Json>;
  using Object = std::vector<Member>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  Json(int v) : v_(static_cast<int64_t>(v)) {}
  Json(long v) : v_(static_cast<int64_t>(v)) {}
  Json(long long v) : v_(static_cast<int64_t>(v)) {}
  Json(unsigned v) : v_(static_cast<int64_t>(v)) {}
  Json(unsigned long v) : v_(static_cast<int64_t>(v)) {}
  Json(unsigned long long v) : v_(static_cast<int64_t>(v)) {}
  Json(double v) : v_(v) {}
  Json(float v) : v_(static_cast<double>(v)) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  static Json array(std::initializer_list<Json> items = {}) { return Json(Array(items)); }
  static Json object() { return Json(Object{}); }

  // Parses one JSON value (surrounding whitespace allowed, nothing else).
  // Throws attnlab::Error "<source>: JSON error at line L col C: <what>".
  static Json parse(std::string_view text, const std::string& source = "<json>");

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_null() const { return kind() == Kind::null; }
  bool is_bool() const { return kind() == Kind::boolean; }
  bool is_int() const { return kind() == Kind::integer; }
  bool is_number() const { return kind() == Kind::integer || kind() == Kind::real; }
  bool is_string() const { return kind() == Kind::string; }
  bool is_array() const { return kind() == Kind::array; }
  bool is_object() const { return kind() == Kind::object; }

  // Typed reads; each throws attnlab::Error naming the expected and actual kind.
  bool as_bool() const;
  int64_t as_int() const;    // an integer, or a real with an exact integer value
  double as_number() const;  // an integer or a real
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Objects. operator[] inserts null for a new key (turning null into an object);
  // at() throws naming the missing key; find() returns nullptr when absent.
  Json& operator[](std::string_view key);
  const Json& at(std::string_view key) const;
  const Json* find(std::string_view key) const;
  bool contains(std::string_view key) const { return find(key) != nullptr; }

  // Arrays. push_back turns null into an array.
  const Json& at(size_t i) const;
  void push_back(Json v);
  size_t size() const;  // elements of an array or members of an object; else 0

  // Compact when indent < 0, else pretty-printed with `indent` spaces.
  std::string dump(int indent = -1) const;

  bool operator==(const Json& o) const { return v_ == o.v_; }

  static const char* kind_name(Kind k);

 private:
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

// Appends `s` as a quoted, escaped JSON string. Bytes >= 0x80 are copied as they
// are; control characters become \n, \t, ... or \u00XX.
void json_escape(std::string& out, std::string_view s);

}  // namespace attnlab
