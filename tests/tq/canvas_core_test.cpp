// The canvas built in C++ (tq::Signature, chain, group, chord, GroupResult)
// run by a C++ worker on every result backend: memory, SQLite (transactional
// chord counter) and Redis (Celery's chord keys).
#include <gtest/gtest.h>

#include <memory>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/signature.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using tq::Json;
using tq::Signature;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 60s;

class Canvas : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      redis = std::make_unique<tq::test::RedisServer>();
      url = redis->url();
    } else {
      url = GetParam() == "sqlite" ? db.url() : "memory://canvas-" + tq::make_uuid();
    }
    app = std::make_unique<tq::App>(url, "");
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(20s));
    }
  }
  void start_worker(int concurrency = 4) {
    tq::WorkerOptions o;
    o.hostname = "cpp@canvas-core";
    o.concurrency = concurrency;
    o.poll_interval = 20ms;
    worker = std::make_unique<tq::Worker>(*app, o);
    worker->start();
  }

  tqtest::TempDb db;
  std::unique_ptr<tq::test::RedisServer> redis;
  std::string url;
  std::unique_ptr<tq::App> app;
  std::unique_ptr<tq::Worker> worker;
};

struct Tasks {
  decltype(std::declval<tq::App&>().task("", {"x", "y"},
                                         [](std::int64_t x, std::int64_t y) { return x + y; })) add,
      mul;
  decltype(std::declval<tq::App&>().task(
      "", {"v"}, [](std::vector<std::int64_t>) { return std::int64_t{0}; })) xsum;
  explicit Tasks(tq::App& app)
      : add(app.task("tasks.add", {"x", "y"},
                     [](std::int64_t x, std::int64_t y) { return x + y; })),
        mul(app.task("tasks.mul", {"x", "y"},
                     [](std::int64_t x, std::int64_t y) { return x * y; })),
        xsum(app.task("tasks.xsum", {"v"}, [](std::vector<std::int64_t> v) {
          std::int64_t s = 0;
          for (auto x : v) s += x;
          return s;
        })) {
    app.task("tasks.echo", {"value"}, [](Json v) { return v; });
    app.task("tasks.fail", {"message"},
             [](std::string m) -> int { throw std::invalid_argument(m); });
  }
};

}  // namespace

TEST_P(Canvas, ChainsPassEachResultOnAndRecordTheirChildren) {
  Tasks t(*app);
  start_worker();
  auto r = (t.add.s(2, 2) | t.mul.s(4) | t.add.s(1)).apply_async();
  EXPECT_EQ(r.get(kWait), 17);
  auto last = r.meta();
  ASSERT_TRUE(last && last->parent_id);
  auto second = app->backend().get(*last->parent_id);
  ASSERT_TRUE(second && second->parent_id);
  EXPECT_EQ(second->result, 16);
  auto first = app->backend().get(*second->parent_id);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->result, 4);
  EXPECT_EQ(first->children,
            Json::array({Json::array({Json::array({second->task_id, nullptr}), nullptr})}));
  // tq::chain from a vector, an immutable step, a name-only signature
  auto r2 =
      tq::chain({t.add.s(1, 1), t.add.si(10, 10), app->signature("tasks.mul", {3})}).apply_async();
  EXPECT_EQ(r2.get(kWait), 60);
}

TEST_P(Canvas, LinkAndLinkErrorRunWithTheResultAndTheFailedId) {
  Tasks t(*app);
  start_worker();
  Signature cb = t.mul.s(10);
  std::string cb_id = cb.freeze();
  auto r = t.add.s(1, 1).link(cb).apply_async();
  EXPECT_EQ(r.get(kWait), 2);
  EXPECT_EQ(app->async_result(cb_id).get(kWait), 20);

  Signature eb = app->signature("tasks.echo");
  std::string eb_id = eb.freeze();
  auto f = app->signature("tasks.fail", {"x"}).link_error(eb).apply_async();
  EXPECT_THROW(f.get(kWait), tq::TaskError);
  EXPECT_EQ(app->async_result(eb_id).get(kWait), f.id());
}

TEST_P(Canvas, FailingChainFailsEveryRemainingStepAndCallsErrbacks) {
  Tasks t(*app);
  start_worker();
  Signature eb = app->signature("tasks.echo");
  std::string eb_id = eb.freeze();
  Signature c = t.add.s(1, 1) | app->signature("tasks.fail", {"boom"}).set_immutable() |
                t.add.s(1) | t.add.s(2);
  c.set_option("link_error", Json::array({eb.to_json()}));
  auto r = c.apply_async();
  try {
    r.get(kWait);
    ADD_FAILURE() << "the chain's last step succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
    EXPECT_EQ(e.message(), "boom");
  }
  auto failed_id = app->async_result(eb_id).get(kWait);  // errback got the failed step's id
  auto failed = app->backend().get(failed_id.get<std::string>());
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, tq::State::Failure);
}

TEST_P(Canvas, GroupResultsInOrderSavedAndRestored) {
  Tasks t(*app);
  start_worker();
  std::vector<Signature> members;
  for (int i = 0; i < 5; ++i) members.push_back(t.add.s(i, i));
  tq::GroupResult g = tq::group(members).apply_async();
  EXPECT_EQ(g.get(kWait), Json::array({0, 2, 4, 6, 8}));
  EXPECT_TRUE(g.ready());
  EXPECT_TRUE(g.successful());
  EXPECT_FALSE(g.failed());
  EXPECT_EQ(g.completed_count(), 5u);
  g.save();
  auto back = tq::GroupResult::restore(*app, g.id());
  EXPECT_EQ(back.ids(), g.ids());
  EXPECT_EQ(back.get(kWait), Json::array({0, 2, 4, 6, 8}));
  g.forget();
  EXPECT_THROW(tq::GroupResult::restore(*app, g.id()), tq::BackendError);

  tq::GroupResult bad =
      tq::group({t.add.s(1, 1), app->signature("tasks.fail", {"member"})}).apply_async();
  EXPECT_THROW(bad.get(kWait), tq::TaskError);
  EXPECT_TRUE(bad.failed());
  EXPECT_FALSE(bad.successful());
}

TEST_P(Canvas, ChordsCallTheBodyOnceWithHeaderResultsInOrder) {
  Tasks t(*app);
  start_worker();
  std::vector<Signature> header;
  for (int i = 0; i < 20; ++i) header.push_back(t.add.s(i, i));
  auto r = tq::chord(header, t.xsum.s()).apply_async();
  EXPECT_EQ(r.get(kWait), 380);
  // group | sig is a chord; the body sees the results in header order
  auto r2 =
      (tq::group({t.add.s(1, 0), t.add.s(2, 0), t.add.s(3, 0)}) | app->signature("tasks.echo"))
          .apply_async();
  EXPECT_EQ(r2.get(kWait), Json::array({1, 2, 3}));
  // empty header: the body gets []
  EXPECT_EQ(tq::chord(std::vector<Signature>{}, t.xsum.s()).apply_async().get(kWait), 0);
}

TEST_P(Canvas, FailedHeaderFailsTheBodyWithChordErrorAndCallsItsErrback) {
  Tasks t(*app);
  start_worker();
  Signature eb = app->signature("tasks.echo");
  std::string eb_id = eb.freeze();
  Signature body = t.xsum.s();
  body.link_error(eb);
  auto r = tq::chord({t.add.s(1, 1), app->signature("tasks.fail", {"hdr"})}, body).apply_async();
  try {
    r.get(kWait);
    ADD_FAILURE() << "chord body ran";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ChordError");
    EXPECT_EQ(e.exc_module(), "celery.exceptions");
    EXPECT_NE(e.message().find("raised ValueError('hdr')"), std::string::npos) << e.message();
  }
  EXPECT_EQ(app->async_result(eb_id).get(kWait), r.id());
}

TEST_P(Canvas, NestedWorkflowsComplete) {
  Tasks t(*app);
  start_worker();
  // group inside a chain: upgraded to a chord
  auto a = (t.add.s(1, 1) | tq::group({t.add.s(1), t.add.s(2)}) | t.xsum.s()).apply_async();
  EXPECT_EQ(a.get(kWait), 7);
  // chord whose header holds chains
  auto b = tq::chord({t.add.s(1, 1) | t.mul.s(3), t.add.s(2, 2)}, t.xsum.s()).apply_async();
  EXPECT_EQ(b.get(kWait), 10);
  // chord inside a chain, then one more step
  auto c =
      (t.add.s(1, 1) | tq::chord({t.add.s(1), t.add.s(2)}, t.xsum.s()) | t.mul.s(10)).apply_async();
  EXPECT_EQ(c.get(kWait), 70);
  // a chord of chords: each inner body reports to the outer chord, once (#3538)
  auto inner1 = tq::chord({t.add.s(1, 1), t.add.s(2, 2)}, t.xsum.s());
  auto inner2 = tq::chord({t.add.s(3, 3), t.add.s(4, 4)}, t.xsum.s());
  auto d = tq::chord({inner1, inner2}, app->signature("tasks.echo")).apply_async();
  EXPECT_EQ(d.get(kWait), Json::array({6, 14}));
  // a chain inside a group
  auto g = tq::group({t.add.s(1, 1) | t.mul.s(10), t.add.s(2, 2) | t.mul.s(10)}).apply_async();
  EXPECT_EQ(g.get(kWait), Json::array({20, 40}));
  // a failing chain inside a chord fails the chord (#6220)
  auto e = tq::chord({t.add.s(1, 1) | app->signature("tasks.fail", {"in chain"}).set_immutable(),
                      t.add.s(2, 2)},
                     t.xsum.s())
               .apply_async();
  EXPECT_THROW(e.get(kWait), tq::TaskError);
}

TEST_P(Canvas, MapStarmapChunksAndAccumulateRunAsCelerysBuiltins) {
  Tasks t(*app);
  start_worker();
  EXPECT_EQ(tq::map(app->signature("tasks.echo"), Json::array({1, "a"})).apply_async().get(kWait),
            Json::array({1, "a"}));
  EXPECT_EQ(tq::starmap(t.add.s(), Json::parse("[[1, 2], [3, 4]]")).apply_async().get(kWait),
            Json::array({3, 7}));
  EXPECT_EQ(
      tq::chunks(t.add.s(), Json::parse("[[1, 1], [2, 2], [3, 3]]"), 2).apply_async().get(kWait),
      Json::parse("[[2, 4], [6]]"));
  EXPECT_EQ(app->signature("celery.accumulate", {1, 2, 3}, {{"index", 1}}).apply_async().get(kWait),
            2);
  // a map over a bad item fails with the task's TypeError, naming the parameter
  try {
    tq::map(t.add.s(), Json::array({"x"})).apply_async().get(kWait);
    ADD_FAILURE() << "map over a string ran";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "TypeError") << e.message();
  }
  EXPECT_THROW(tq::chunks(t.add.s(), Json::array(), 0), tq::SignatureError);
}

// A message whose embed is malformed is dead-lettered with the reason, and
// FAILURE is stored on every id it names (its own, its chain's, its chord
// body's), so no client waits forever.
TEST_P(Canvas, MalformedEmbedIsDeadLetteredAndEveryNamedIdFails) {
  Tasks t(*app);
  tq::TaskMessage m = app->build_message("tasks.add", {1, 2}, Json::object(), {});
  m.chain = Json::parse(R"([{"task": "tasks.add", "args": [1], "options": {"task_id": "step-ok"}},
                            {"task": 5, "options": {"task_id": "step-bad"}}])");
  tq::TaskMessage c = app->build_message("tasks.add", {1, 2}, Json::object(), {});
  c.group = "group-x";
  c.chord = Json::parse(
      R"({"task": "tasks.xsum", "subtask_type": "weird", "options": {"task_id": "body-x"}})");
  app->broker().publish("celery", 0, tq::encode(m));
  app->broker().publish("celery", 0, tq::encode(c));
  start_worker();
  for (const std::string& id : {m.id, std::string("step-ok"), std::string("step-bad")}) {
    try {
      app->async_result(id).get(kWait);
      ADD_FAILURE() << id << " succeeded";
    } catch (const tq::TaskError& e) {
      EXPECT_NE(e.message().find("embed.chain[1]: 'task' must be a non-empty string"),
                std::string::npos)
          << id << ": " << e.message();
    }
  }
  for (const std::string& id : {c.id, std::string("body-x")}) {
    try {
      app->async_result(id).get(kWait);
      ADD_FAILURE() << id << " succeeded";
    } catch (const tq::TaskError& e) {
      EXPECT_NE(e.message().find("unknown subtask_type 'weird'"), std::string::npos)
          << id << ": " << e.message();
    }
  }
  EXPECT_EQ(worker->counters().succeeded, 0u);
}

TEST_P(Canvas, BadSignaturesAreRejectedWithTheFieldNamed) {
  auto expect_error = [](const Json& dict, const std::string& fragment) {
    try {
      Signature::from_json(dict);
      ADD_FAILURE() << "accepted " << dict.dump();
    } catch (const tq::SignatureError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  expect_error(Json::array(), "must be an object");
  expect_error(Json{{"args", Json::array()}}, "'task' must be a non-empty string");
  expect_error(Json{{"task", "t"}, {"args", "x"}}, "'args' must be an array");
  expect_error(Json{{"task", "t"}, {"kwargs", 1}}, "'kwargs' must be an object");
  expect_error(Json{{"task", "t"}, {"subtask_type", "weird"}}, "unknown subtask_type 'weird'");
  expect_error(
      Json{{"task", "celery.chord"}, {"subtask_type", "chord"}, {"kwargs", Json::object()}},
      "kwargs.body");
  expect_error(Json{{"task", "celery.group"},
                    {"subtask_type", "group"},
                    {"kwargs", {{"tasks", Json::array({Json{{"task", 3}}})}}}},
               "group member 0");
  Signature unbound("tasks.add", {1, 2});
  EXPECT_THROW(unbound.apply_async(), tq::SignatureError);
  EXPECT_THROW(Signature("", {}), tq::SignatureError);
}

TEST_P(Canvas, LargeGroupsAndChordsComplete) {
  Tasks t(*app);
  start_worker(8);
  std::vector<Signature> members;
  const int n = 10000;
  members.reserve(n);
  for (int i = 0; i < n; ++i) members.push_back(t.add.s(i, 0));
  auto r = tq::chord(members, t.xsum.s()).apply_async();
  EXPECT_EQ(r.get(120s), static_cast<std::int64_t>(n) * (n - 1) / 2);
}

TEST_P(Canvas, LongChainCompletes) {
  Tasks t(*app);
  start_worker(2);
  std::vector<Signature> steps{t.add.s(0, 0)};
  const int n = 500;  // quadratic in n (every message carries the rest); bench_canvas runs 1,000
  for (int i = 1; i < n; ++i) steps.push_back(t.add.s(1));
  EXPECT_EQ(tq::chain(steps).apply_async().get(120s), n - 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, Canvas, ::testing::Values("memory", "sqlite", "redis"));
