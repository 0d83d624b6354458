// DecodeOptions' resource limits, and the bugs the fuzz targets found in the
// decoders (tests/fuzz/regressions/ holds the inputs themselves).
#include <gtest/gtest.h>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/url.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using tqtest::read_sample;

namespace {

std::string with_body(const std::string& body_json) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  env["body"] = base64_encode(body_json);
  return dumps(env);
}

// The MessageError decode() throws, or "" when it accepts the envelope.
std::string rejection(const std::string& envelope, const DecodeOptions& options) {
  try {
    decode(envelope, options);
    return "";
  } catch (const MessageError& e) {
    EXPECT_EQ(e.task_id(), "cd472d41-beb9-428f-a7aa-74c631bc0279") << e.what();
    EXPECT_EQ(e.task_name(), "tasks.add") << e.what();
    return e.what();
  }
}

std::string nested(std::size_t levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

}  // namespace

TEST(TqDecodeLimits, DefaultsAcceptEverySample) {
  for (const char* s : {"task_add.json", "task_chord_body.json", "task_chain_first.json"})
    EXPECT_NO_THROW(decode(read_sample(s))) << s;
}

TEST(TqDecodeLimits, BodyDepth) {
  DecodeOptions o;
  o.max_depth = 10;
  // [ [ args... ] ] : the body array is level 1, args level 2.
  EXPECT_EQ(rejection(with_body("[[" + nested(8) + "], {}, {}]"), o), "");
  std::string why = rejection(with_body("[[" + nested(9) + "], {}, {}]"), o);
  EXPECT_NE(why.find("body nests deeper than 10 levels (DecodeOptions::max_depth)"),
            std::string::npos)
      << why;
  // Brackets inside strings are text, not nesting.
  EXPECT_EQ(rejection(with_body("[[\"" + nested(50) + "\"], {}, {}]"), o), "");
}

TEST(TqDecodeLimits, DeepEnvelopeIsRejectedByDefaultAndStillNamesTheTask) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  std::string text = dumps(env);
  // 200,000 levels in an unknown header, after id and task.
  text.insert(text.rfind('}'), ", \"deep\": " + nested(200000));
  std::string why = rejection(text, DecodeOptions{});
  EXPECT_NE(why.find("envelope nests deeper than 256 levels"), std::string::npos) << why;
}

TEST(TqDecodeLimits, ArgsCount) {
  DecodeOptions o;
  o.max_args = 3;
  EXPECT_EQ(rejection(with_body("[[1, \"a,b\", [4, 5, 6, 7]], {}, {}]"), o), "");
  std::string why = rejection(with_body("[[1, 2, {\"x\": 1}, null], {}, {}]"), o);
  EXPECT_NE(why.find("body has more than 3 positional arguments (DecodeOptions::max_args)"),
            std::string::npos)
      << why;
  // kwargs and embed do not count as positional arguments.
  EXPECT_EQ(rejection(with_body("[[], {\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}, {}]"), o), "");
}

TEST(TqDecodeLimits, StringLength) {
  DecodeOptions o;
  o.max_string_length = 16;
  EXPECT_EQ(rejection(with_body("[[\"0123456789abcdef\"], {}, {}]"), o), "");
  std::string why = rejection(with_body("[[], {\"k\": \"0123456789abcdefg\"}, {}]"), o);
  EXPECT_NE(why.find("body has a string of 17 bytes > limit 16"), std::string::npos) << why;
  // An escaped quote does not end the string early.
  why = rejection(with_body("[[\"01234567\\\"9abcdefgh\"], {}, {}]"), o);
  EXPECT_NE(why.find("DecodeOptions::max_string_length"), std::string::npos) << why;
}

// Fuzz regression (message): an expires in year 4052 overflowed the
// nanosecond TimePoint (signed overflow, UBSan). It now saturates.
TEST(TqDecodeLimits, FarFutureDatesSaturate) {
  EXPECT_EQ(parse_iso8601("4052-11-25T04:43:01.154404+00:00"), TimePoint::max());
  EXPECT_EQ(parse_iso8601("9999-12-31T23:59:59"), TimePoint::max());
  EXPECT_EQ(parse_iso8601("0001-01-01T00:00:00"), TimePoint::min());
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  env["headers"]["expires"] = "4052-11-25T04:43:01.154404+00:00";
  TaskMessage m = decode(dumps(env));
  EXPECT_EQ(m.expires, TimePoint::max());
}

TEST(TqDecodeLimits, OutOfRangeDateFieldsAreRejected) {
  EXPECT_THROW(parse_iso8601("2026-13-01T00:00:00"), MessageError);
  EXPECT_THROW(parse_iso8601("2026-12-32T00:00:00"), MessageError);
  EXPECT_THROW(parse_iso8601("2026-12-01T24:00:00"), MessageError);
  EXPECT_THROW(parse_iso8601("2026-12-01T00:60:00"), MessageError);
  EXPECT_THROW(parse_iso8601("2026-12-01T00:00:00+24:00"), MessageError);
}

// Fuzz regression (url): a password after a second '@' ("u:p@ss@host") was
// shown by redacted(), which looked at the first '@' while parse() uses
// the last.
TEST(TqUrlRedaction, PasswordWithAtSignStaysHidden) {
  Url u = Url::parse("amqp://user:pa@ssw0rd@127.0.0.1:5672//");
  EXPECT_EQ(u.password, "pa@ssw0rd");
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.redacted(), "amqp://user:***@127.0.0.1:5672//");
  EXPECT_EQ(Url::parse("redis://:s3cret@h:1/0?x=a@b").redacted(), "redis://:***@h:1/0?x=a@b");
}

TEST(TqUrlRedaction, ErrorsNeverQuoteThePassword) {
  for (const char* bad : {"redis://:hunter2secret@host:99999/0", "redis://:hunter2secret@host:x/0",
                          "redis://:hunter2secret@[::1:6379/0", "redis://:hunter2secret@h/%zz"}) {
    try {
      Url::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).find("hunter2secret"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("***"), std::string::npos) << e.what();
    }
  }
}

// A bracketed IPv6 port was read with std::stoi unchecked: out_of_range
// escaped for a long number and port 0 / 70000 were accepted.
TEST(TqUrlRedaction, Ipv6PortIsRangeChecked) {
  EXPECT_EQ(Url::parse("redis://[::1]:6380/0").port, 6380);
  EXPECT_THROW(Url::parse("redis://[::1]:99999999999999/0"), ConfigError);
  EXPECT_THROW(Url::parse("redis://[::1]:70000/0"), ConfigError);
  EXPECT_THROW(Url::parse("redis://[::1]:0/0"), ConfigError);
}

// Fuzz regression (json): bytes ED AD 90 decode to U+DB50, a UTF-16
// surrogate; dump_string wrote it as a lone "\udb50", which no JSON parser
// (ours included) accepts. Encoded surrogates are invalid UTF-8: U+FFFD.
TEST(TqJsonFuzz, EncodedSurrogatesBecomeReplacementCharacters) {
  std::string out;
  dump_string(out, "a\xed\xad\x90z");
  EXPECT_EQ(out, "\"a\\ufffdz\"");
  EXPECT_EQ(loads(out).get<std::string>(), "a\xef\xbf\xbdz");
}
