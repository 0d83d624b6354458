#include <gtest/gtest.h>

#include "celeriac/tq/message.hpp"
#include "celeriac/tq/result_backend.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using tqtest::read_sample;

namespace {

const char* kTaskSamples[] = {"task_add.json",
                              "task_kwargs.json",
                              "task_echo_unicode.json",
                              "task_fail.json",
                              "task_countdown_eta.json",
                              "task_expires.json",
                              "task_priority5.json",
                              "task_ignore_result.json",
                              "task_chain_first.json",
                              "task_chain_second.json",
                              "task_chain_last.json",
                              "task_group_member.json",
                              "task_chord_header.json",
                              "task_chord_body.json",
                              "task_link.json",
                              "task_link_callback.json",
                              "task_link_error.json",
                              "task_errback_call.json",
                              "task_retry_republished.json",
                              "task_raw_plain_body.json",
                              "task_restored_redelivered.json"};

// Samples whose args hold no JSON objects (nlohmann::json sorts object keys,
// Python keeps insertion order), so re-encoding reproduces them byte for byte.
const char* kByteExact[] = {"task_add.json",
                            "task_kwargs.json",
                            "task_fail.json",
                            "task_countdown_eta.json",
                            "task_expires.json",
                            "task_priority5.json",
                            "task_ignore_result.json",
                            "task_group_member.json",
                            "task_retry_republished.json",
                            "task_raw_plain_body.json",
                            "task_restored_redelivered.json",
                            "task_chain_last.json",
                            "task_link_callback.json"};

Json body_of(const std::string& envelope) {
  Json env = loads(envelope);
  std::string body = env["body"].get<std::string>();
  if (env["properties"].value("body_encoding", "") == "base64") body = base64_decode(body);
  return loads(body);
}

}  // namespace

class TqSample : public ::testing::TestWithParam<const char*> {};

TEST_P(TqSample, DecodesAndReencodesToTheSameMessage) {
  std::string text = read_sample(GetParam());
  TaskMessage m = decode(text);
  Json env = loads(text);
  EXPECT_EQ(m.id, env["headers"]["id"].get<std::string>());
  EXPECT_EQ(m.task, env["headers"]["task"].get<std::string>());
  EXPECT_EQ(m.queue, "celery");
  EXPECT_EQ(m.delivery_tag, env["properties"]["delivery_tag"].get<std::string>());
  Json body = body_of(text);
  EXPECT_EQ(m.args, body[0]);
  EXPECT_EQ(m.kwargs, body[1]);
  std::string again = encode(m);
  Json env2 = loads(again);
  // Same envelope apart from the body's encoding; same decoded body.
  Json a = env, b = env2;
  a.erase("body");
  b.erase("body");
  EXPECT_EQ(a, b) << again;
  EXPECT_EQ(body_of(again), body);
  // Decoding our encoding gives the same message again.
  TaskMessage m2 = decode(again);
  EXPECT_EQ(encode(m2), again);
}

INSTANTIATE_TEST_SUITE_P(CelerySamples, TqSample, ::testing::ValuesIn(kTaskSamples));

class TqSampleExact : public ::testing::TestWithParam<const char*> {};

TEST_P(TqSampleExact, ReencodesByteForByte) {
  std::string text = read_sample(GetParam());
  EXPECT_EQ(encode(decode(text)), text);
}

INSTANTIATE_TEST_SUITE_P(CelerySamples, TqSampleExact, ::testing::ValuesIn(kByteExact));

TEST(TqMessage, SampleDetails) {
  TaskMessage eta = decode(read_sample("task_countdown_eta.json"));
  ASSERT_TRUE(eta.eta);
  EXPECT_EQ(format_iso8601(*eta.eta), "2026-11-25T04:43:30.026214+00:00");
  TaskMessage exp = decode(read_sample("task_expires.json"));
  ASSERT_TRUE(exp.expires);
  EXPECT_EQ(exp.expiration, "0");
  EXPECT_EQ(decode(read_sample("task_priority5.json")).priority, 5);
  EXPECT_TRUE(decode(read_sample("task_ignore_result.json")).ignore_result);
  EXPECT_TRUE(decode(read_sample("task_restored_redelivered.json")).redelivered);
  EXPECT_FALSE(decode(read_sample("task_raw_plain_body.json")).base64_body);
  TaskMessage retry = decode(read_sample("task_retry_republished.json"));
  EXPECT_EQ(retry.retries, 1);
  EXPECT_EQ(retry.parent_id, retry.id);
  EXPECT_EQ(retry.extra_properties["replaced_task_nesting"], 0);
  TaskMessage uni = decode(read_sample("task_echo_unicode.json"));
  EXPECT_EQ(uni.args[0]["s"], "h\xc3\xa9llo \xe2\x98\x83");
  EXPECT_EQ(uni.args[0]["i"], 1099511627776LL);
  EXPECT_FALSE(decode(read_sample("task_add.json")).has_canvas());
  EXPECT_FALSE(decode(read_sample("task_chain_last.json")).has_canvas());  // chain == []
  EXPECT_TRUE(decode(read_sample("task_chain_first.json")).has_canvas());
  EXPECT_TRUE(decode(read_sample("task_chord_header.json")).has_canvas());
  EXPECT_TRUE(decode(read_sample("task_link.json")).has_canvas());
  EXPECT_TRUE(decode(read_sample("task_link_error.json")).has_canvas());
}

TEST(TqMessage, EncodeFillsCeleryDefaults) {
  TaskMessage m;
  m.id = "cd472d41-beb9-428f-a7aa-74c631bc0279";
  m.task = "tasks.add";
  m.args = Json::array({2, 3});
  m.reply_to = "r";
  std::string env = encode(m);
  Json j = loads(env);
  EXPECT_EQ(j["headers"]["root_id"], m.id);
  EXPECT_EQ(j["headers"]["argsrepr"], "(2, 3)");
  EXPECT_EQ(j["headers"]["kwargsrepr"], "{}");
  EXPECT_EQ(j["headers"]["timelimit"], Json::array({nullptr, nullptr}));
  EXPECT_EQ(j["properties"]["delivery_info"]["routing_key"], "celery");
  EXPECT_EQ(j["properties"]["body_encoding"], "base64");
  EXPECT_EQ(j["properties"]["delivery_tag"].get<std::string>().size(), 36u);
  EXPECT_EQ(body_of(env), loads(read_sample("task_add.body.json")));
  EXPECT_EQ(
      env.rfind(
          "{\"body\": "
          "\"W1syLCAzXSwge30sIHsiY2FsbGJhY2tzIjogbnVsbCwgImVycmJhY2tzIjogbnVsbCwgImNoYWluIjogbnVsbC"
          "wgImNob3JkIjogbnVsbH1d\", \"content-encoding\": \"utf-8\", \"content-type\": "
          "\"application/json\", \"headers\": {\"lang\": \"py\", \"task\": \"tasks.add\", \"id\": "
          "\"cd472d41-beb9-428f-a7aa-74c631bc0279\", \"shadow\": null, \"eta\": null, \"expires\": "
          "null, \"group\": null, \"group_index\": null, \"retries\": 0, \"timelimit\": [null, "
          "null], \"root_id\": \"cd472d41-beb9-428f-a7aa-74c631bc0279\", \"parent_id\": null, "
          "\"argsrepr\": \"(2, 3)\", \"kwargsrepr\": \"{}\", \"origin\": \"gen",
          0),
      0u);
  TaskMessage one;
  one.id = "x";
  one.task = "t";
  one.args = Json::array({"a'b"});
  one.kwargs = Json{{"k", nullptr}};
  Json h = loads(encode(one))["headers"];
  EXPECT_EQ(h["argsrepr"], "('a\\'b',)");
  EXPECT_EQ(h["kwargsrepr"], "{'k': None}");
}

TEST(TqMessage, Iso8601) {
  TimePoint t = parse_iso8601("2026-11-25T04:43:30.026214+00:00");
  EXPECT_EQ(format_iso8601(t), "2026-11-25T04:43:30.026214+00:00");
  EXPECT_EQ(format_iso8601(t, false), "2026-11-25T04:43:30.026214");
  EXPECT_EQ(parse_iso8601("2026-11-25T04:43:30.026214"), t);  // naive = UTC
  EXPECT_EQ(parse_iso8601("2026-11-25T06:43:30.026214+02:00"), t);
  EXPECT_EQ(parse_iso8601("2026-11-25T04:43:30.026214Z"), t);
  EXPECT_EQ(format_iso8601(parse_iso8601("2026-11-25T04:43:30")),
            "2026-11-25T04:43:30.000000+00:00");
  EXPECT_THROW(parse_iso8601("yesterday"), MessageError);
  EXPECT_THROW(parse_iso8601("2026-11-25T04:43:30+0200"), MessageError);
}

TEST(TqMessage, Uuid4) {
  std::string a = make_uuid(), b = make_uuid();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');
  EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
}

// ---- bad input: every reason is precise and carries the id when readable ----

namespace {

std::string with_body(const std::string& body_json, bool base64 = true) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  env["body"] = base64 ? base64_encode(body_json) : body_json;
  if (!base64) env["properties"].erase("body_encoding");
  return dumps(env);
}

std::string edited(void (*edit)(OrderedJson&)) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  edit(env);
  return dumps(env);
}

void expect_error(const std::string& envelope, const std::string& fragment, bool id_known = true) {
  try {
    decode(envelope);
    FAIL() << "decoded: " << envelope;
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    if (id_known) {
      EXPECT_EQ(e.task_id(), "cd472d41-beb9-428f-a7aa-74c631bc0279");
      EXPECT_EQ(e.task_name(), "tasks.add");
    }
  }
}

}  // namespace

TEST(TqMessageBad, TwoElementBody) {
  expect_error(with_body("[[2, 3], {}]"),
               "body is a 2-element array; protocol 2 needs [args, kwargs, embed]");
}

TEST(TqMessageBad, BodyShapes) {
  expect_error(with_body("{\"args\": []}"),
               "body is object; protocol 2 needs [args, kwargs, embed]");
  expect_error(with_body("[{}, {}, {}]"), "body args must be an array");
  expect_error(with_body("[[], [], {}]"), "body kwargs must be an object");
  expect_error(with_body("[[], {}, 5]"), "body embed must be an object");
  // An embed without keys is valid (EmbedWithoutKeysIsAccepted).
}

TEST(TqMessageBad, EmbedWithoutKeysIsAccepted) {
  TaskMessage m = decode(with_body("[[1, 2], {}, {}]"));
  EXPECT_FALSE(m.has_canvas());
}

TEST(TqMessageBad, UndecodableBody) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  env["body"] = "!!!not base64";
  expect_error(dumps(env), "undecodable body: invalid base64");
  expect_error(with_body("[[1, 2], {}, {"), "undecodable body: invalid JSON");
  expect_error(with_body("[[1, 2], {}, {", false), "undecodable body");
}

TEST(TqMessageBad, Envelope) {
  expect_error("not json at all", "envelope is not JSON", false);
  expect_error("[1, 2]", "envelope must be a JSON object", false);
  expect_error(edited([](OrderedJson& e) { e.erase("content-type"); }), "no 'content-type'");
  expect_error(edited([](OrderedJson& e) { e["content-type"] = "application/x-python-serialize"; }),
               "unsupported content-type");
  expect_error(edited([](OrderedJson& e) { e["body"] = 5; }), "'body' must be a string");
  expect_error(edited([](OrderedJson& e) { e.erase("body"); }), "no 'body'");
  expect_error(edited([](OrderedJson& e) { e["properties"].erase("delivery_tag"); }),
               "delivery_tag");
  expect_error(edited([](OrderedJson& e) { e["properties"]["delivery_info"].erase("exchange"); }),
               "'exchange'");
  expect_error(edited([](OrderedJson& e) { e["properties"]["body_encoding"] = "rot13"; }),
               "body_encoding");
}

TEST(TqMessageBad, Headers) {
  expect_error(edited([](OrderedJson& e) { e.erase("headers"); }), "no 'headers'", false);
  expect_error(edited([](OrderedJson& e) { e["headers"] = "x"; }), "'headers' must be an object",
               false);
  expect_error(edited([](OrderedJson& e) { e["headers"].erase("task"); }), "no 'task'", false);
  expect_error(edited([](OrderedJson& e) { e["headers"]["id"] = 7; }),
               "header 'id' must be a string", false);
  expect_error(edited([](OrderedJson& e) { e["headers"]["retries"] = "1"; }), "header 'retries'");
  expect_error(edited([](OrderedJson& e) { e["headers"]["eta"] = "soon"; }), "header 'eta'");
  expect_error(edited([](OrderedJson& e) { e["headers"]["expires"] = 12; }),
               "header 'expires' must be a string");
  expect_error(edited([](OrderedJson& e) { e["headers"]["timelimit"] = 3; }), "timelimit");
  expect_error(edited([](OrderedJson& e) { e["headers"]["ignore_result"] = "no"; }),
               "ignore_result");
  expect_error(edited([](OrderedJson& e) { e["properties"]["priority"] = "high"; }), "priority");
}

TEST(TqMessageBad, UnknownHeadersAreKept) {
  std::string env = edited([](OrderedJson& e) { e["headers"]["stamped_headers"] = nullptr; });
  TaskMessage m = decode(env);
  EXPECT_TRUE(m.extra_headers.contains("stamped_headers"));
  EXPECT_NE(encode(m).find("\"stamped_headers\": null"), std::string::npos);
}

TEST(TqMessageBad, Oversized) {
  std::string env = read_sample("task_add.json");
  try {
    decode(env, DecodeOptions{100});
    FAIL();
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("oversized message"), std::string::npos);
  }
  auto [id, name] = peek_id_and_name(env);
  EXPECT_EQ(id, "cd472d41-beb9-428f-a7aa-74c631bc0279");
  EXPECT_EQ(name, "tasks.add");
  auto [id2, name2] = peek_id_and_name("garbage");
  EXPECT_FALSE(id2);
}

TEST(TqMessage, MarkRedelivered) {
  std::string env = mark_redelivered(read_sample("task_add.json"));
  TaskMessage m = decode(env);
  EXPECT_TRUE(m.redelivered);
  Json j = loads(env);
  EXPECT_EQ(j["properties"]["delivery_info"]["redelivered"], true);
  EXPECT_EQ(mark_redelivered("junk"), "junk");
}

// ---- result metas ----

class TqResultSample : public ::testing::TestWithParam<const char*> {};

TEST_P(TqResultSample, RoundTripsByteForByte) {
  std::string text = read_sample(GetParam());
  ResultMeta m = ResultMeta::from_json(text);
  EXPECT_EQ(m.to_json(), text);
}

INSTANTIATE_TEST_SUITE_P(CelerySamples, TqResultSample,
                         ::testing::Values("result_success.json", "result_failure.json",
                                           "result_retry.json", "result_revoked_expired.json",
                                           "result_revoked.json", "result_chain_parent.json",
                                           "result_group_member.json", "result_chord_body.json",
                                           "result_extended_success.json",
                                           "result_extended_failure.json"));

TEST(TqResultMeta, BadMetas) {
  EXPECT_THROW(ResultMeta::from_json("[]"), MessageError);
  EXPECT_THROW(ResultMeta::from_json(R"({"status": "SUCCESS"})"), MessageError);
  EXPECT_THROW(ResultMeta::from_json(R"({"status": "DONE", "task_id": "x"})"), MessageError);
  EXPECT_THROW(ResultMeta::from_json(R"({"status": 1, "task_id": "x"})"), MessageError);
}

TEST(TqMessageBad, OversizedStillNamesTheTask) {
  std::string env = tqtest::read_sample("task_add.json");
  try {
    decode(env, DecodeOptions{100});
    FAIL();
  } catch (const MessageError& e) {
    EXPECT_NE(std::string(e.what()).find("oversized message"), std::string::npos) << e.what();
    EXPECT_EQ(e.task_id(), "cd472d41-beb9-428f-a7aa-74c631bc0279");
    EXPECT_EQ(e.task_name(), "tasks.add");
  }
  try {
    decode("{\"headers\": 5" + std::string(200, ' '), DecodeOptions{100});
    FAIL();
  } catch (const MessageError& e) {
    EXPECT_FALSE(e.task_id());
  }
}
