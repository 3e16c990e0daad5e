#include <gtest/gtest.h>

#include <cmath>

#include "data/json.h"
#include "test_util.h"

namespace attnlab {
namespace {

TEST(Json, BuildAndDumpKeepsInsertionOrder) {
  Json j = Json::object();
  j["step"] = 10;
  j["loss"] = 3.25;
  j["name"] = "run \"a\"";
  j["ok"] = true;
  j["none"] = nullptr;
  j["tags"] = Json::array({"x", 1, 2.5});
  EXPECT_EQ(j.dump(), R"({"step":10,"loss":3.25,"name":"run \"a\"","ok":true,"none":null,"tags":["x",1,2.5]})");
  j["step"] = 11;  // replacing keeps the position
  EXPECT_EQ(j.as_object().front().first, "step");
  EXPECT_EQ(j.at("step").as_int(), 11);
}

TEST(Json, RoundTripAllKinds) {
  Json j = Json::object();
  j["int"] = int64_t{-9007199254740993};  // not representable as a double
  j["big"] = int64_t{9223372036854775807};
  j["real"] = 0.1;
  j["whole_real"] = 2.0;
  j["tiny"] = 1e-300;
  j["str"] = std::string("tab\tnl\nquote\"back\\ctl\x01 é \xff");
  j["nested"] = Json::array({Json::array({}), Json::object(), Json::array({1, Json::array({2})})});
  for (int indent : {-1, 0, 2}) {
    Json k = Json::parse(j.dump(indent));
    EXPECT_EQ(k, j) << j.dump(indent);
  }
  EXPECT_EQ(Json(2.0).dump(), "2.0");
  EXPECT_EQ(Json(0.1).dump(), "0.1");
  EXPECT_TRUE(Json::parse("2.0").kind() == Json::Kind::real);
  EXPECT_TRUE(Json::parse("2").is_int());
}

TEST(Json, ParsesEscapesAndUnicode) {
  Json j = Json::parse(R"( {"a": "\u00e9\u20ac\ud83d\ude00\/\b\f\r", "b" : [ 1 , -2.5e3 , true , false , null ] } )");
  EXPECT_EQ(j.at("a").as_string(), "é€😀/\b\f\r");
  const Json& b = j.at("b");
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(b.at(0).as_int(), 1);
  EXPECT_DOUBLE_EQ(b.at(1).as_number(), -2500.0);
  EXPECT_EQ(b.at(1).as_int(), -2500);
  EXPECT_TRUE(b.at(2).as_bool());
  EXPECT_FALSE(b.at(3).as_bool());
  EXPECT_TRUE(b.at(4).is_null());
}

TEST(Json, NonFiniteNumbersLikePython) {
  Json j = Json::array({std::nan(""), HUGE_VAL, -HUGE_VAL});
  EXPECT_EQ(j.dump(), "[NaN,Infinity,-Infinity]");
  Json k = Json::parse(j.dump());
  EXPECT_TRUE(std::isnan(k.at(0).as_number()));
  EXPECT_EQ(k.at(1).as_number(), HUGE_VAL);
  EXPECT_EQ(k.at(2).as_number(), -HUGE_VAL);
}

TEST(Json, ParseErrorsNameSourceAndPosition) {
  EXPECT_ERROR_MENTIONS(Json::parse("{\"a\": 1,\n \"b\" 2}", "cfg.json"), "cfg.json", "line 2",
                        "expected ':'");
  EXPECT_ERROR_MENTIONS(Json::parse("[1, 2", "x.json"), "x.json", "expected ']'");
  EXPECT_ERROR_MENTIONS(Json::parse("\"abc", "s"), "unterminated string");
  EXPECT_ERROR_MENTIONS(Json::parse("01"), "unexpected text");
  EXPECT_ERROR_MENTIONS(Json::parse("1."), "bad number");
  EXPECT_ERROR_MENTIONS(Json::parse("tru"), "unexpected character");
  EXPECT_ERROR_MENTIONS(Json::parse("{} x"), "unexpected text after the value");
  EXPECT_ERROR_MENTIONS(Json::parse("\"\\x\""), "bad escape");
  EXPECT_ERROR_MENTIONS(Json::parse(""), "unexpected end");
  EXPECT_ERROR_MENTIONS(Json::parse(std::string(10000, '[')), "nesting too deep");
}

TEST(Json, TypedAccessErrors) {
  Json j = Json::parse(R"({"a": "x", "b": 1.5})");
  EXPECT_ERROR_MENTIONS(j.at("a").as_int(), "expected integer", "string");
  EXPECT_ERROR_MENTIONS(j.at("b").as_int(), "expected integer");
  EXPECT_ERROR_MENTIONS(j.at("missing"), "missing key \"missing\"");
  EXPECT_ERROR_MENTIONS(j.at("a").as_array(), "expected array");
  EXPECT_EQ(j.find("missing"), nullptr);
  EXPECT_TRUE(j.contains("a"));
}

TEST(Json, HugeIntegersBecomeReals) {
  Json j = Json::parse("123456789012345678901234567890");
  EXPECT_EQ(j.kind(), Json::Kind::real);
  EXPECT_NEAR(j.as_number(), 1.2345678901234568e29, 1e15);
}

}  // namespace
}  // namespace attnlab
