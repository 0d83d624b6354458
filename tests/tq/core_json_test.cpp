#include <gtest/gtest.h>

#include <cmath>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"

using namespace celeriac::tq;

TEST(TqJson, DumpsLikePython) {
  Json j = loads(R"({"a": [1, 2.5, null, true], "b": "x"})");
  EXPECT_EQ(dumps(j), R"({"a": [1, 2.5, null, true], "b": "x"})");
  EXPECT_EQ(dumps(Json::array()), "[]");
  EXPECT_EQ(dumps(Json::object()), "{}");
  EXPECT_EQ(dumps(Json(1.0)), "1.0");
  EXPECT_EQ(dumps(Json(1099511627776LL)), "1099511627776");
}

TEST(TqJson, EnsureAsciiEscapes) {
  EXPECT_EQ(dumps(Json("h\xc3\xa9llo \xe2\x98\x83")), R"("h\u00e9llo \u2603")");
  EXPECT_EQ(dumps(Json("\xf0\x9f\x98\x80")), R"("\ud83d\ude00")");
  EXPECT_EQ(dumps(Json("q\"b\\n\n\t\x01")), R"("q\"b\\n\n\t\u0001")");
  std::string invalid = "a\xff";
  std::string out;
  dump_string(out, invalid);
  EXPECT_EQ(out, R"("a\ufffd")");
}

TEST(TqJson, SurrogatePairsParse) {
  Json j = loads(R"("\ud83d\ude00")");
  EXPECT_EQ(j.get<std::string>(), "\xf0\x9f\x98\x80");
}

struct NanVector {
  const char* text;
  const char* expected_dump;
};

class TqJsonNonFinite : public ::testing::TestWithParam<NanVector> {};

TEST_P(TqJsonNonFinite, RoundTrips) {
  Json j = loads(GetParam().text);
  EXPECT_EQ(dumps(j), GetParam().expected_dump);
}

INSTANTIATE_TEST_SUITE_P(
    Vectors, TqJsonNonFinite,
    ::testing::Values(
        NanVector{"NaN", "NaN"}, NanVector{"Infinity", "Infinity"},
        NanVector{"-Infinity", "-Infinity"},
        NanVector{"[NaN, Infinity, -Infinity, 1.5]", "[NaN, Infinity, -Infinity, 1.5]"},
        NanVector{R"({"x": NaN, "s": "NaN Infinity"})", R"({"s": "NaN Infinity", "x": NaN})"},
        NanVector{R"(["a\"NaN", -Infinity])", R"(["a\"NaN", -Infinity])"},
        NanVector{R"({"Infinity": Infinity})", R"({"Infinity": Infinity})"}));

TEST(TqJson, NonFiniteValuesAreReal) {
  Json j = loads("[NaN, Infinity, -Infinity]");
  EXPECT_TRUE(std::isnan(j[0].get<double>()));
  EXPECT_EQ(j[1].get<double>(), HUGE_VAL);
  EXPECT_EQ(j[2].get<double>(), -HUGE_VAL);
}

TEST(TqJson, InvalidJsonSaysWhere) {
  try {
    loads("[1, 2");
    FAIL();
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos);
  }
  EXPECT_THROW(loads("Nan"), MessageError);
  EXPECT_THROW(loads("[Inf]"), MessageError);
}

TEST(TqJson, Base64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_decode("Zm9vYg=="), "foob");
  EXPECT_EQ(base64_decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(base64_decode("Zm9v\nYmFy"), "foobar");
  EXPECT_THROW(base64_decode("Zm9v!"), MessageError);
  EXPECT_THROW(base64_decode("Zg==Zg"), MessageError);
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  EXPECT_EQ(base64_decode(base64_encode(all)), all);
}
