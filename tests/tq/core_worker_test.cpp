// Worker: pools, prefetch, acks, queues, events, graceful shutdown, and
// every kind of bad input (dead-lettered, FAILURE stored, the worker goes on).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "core_test_util.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;
using tqtest::eventually;
using tqtest::read_sample;

namespace {

constexpr auto kWait = 10s;

// A gate tasks wait on (bounded, so a broken test cannot hang).
class Gate {
 public:
  void open() {
    {
      std::lock_guard lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void pass() {
    std::unique_lock lock(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait_for(lock, kWait, [&] { return open_; });
  }
  bool wait_waiting(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

// Records the task events of every worker on memory:// (a WorkerService,
// as the Redis transport's event dispatcher is one).
struct EventLog {
  std::mutex mu;
  std::vector<Json> events;
  std::vector<std::string> types_of(const std::string& uuid) {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (auto& e : events)
      if (e.value("uuid", "") == uuid) out.push_back(e["type"]);
    return out;
  }
};

EventLog& event_log() {
  static EventLog log;
  return log;
}

class RecordingService : public WorkerService {
 public:
  void on_task_event(const Json& event) override {
    std::lock_guard lock(event_log().mu);
    event_log().events.push_back(event);
  }
  void stop() override {}
};

void register_event_recorder() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_worker_service("memory",
                            [](const Url&, WorkerControl&) -> std::unique_ptr<WorkerService> {
                              return std::make_unique<RecordingService>();
                            });
  });
}

class TqWorker : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    register_event_recorder();
    url = GetParam() == "sqlite" ? db.url() : "memory://worker-test-" + make_uuid();
    app = std::make_unique<App>(url, "");
  }
  void TearDown() override {
    if (worker) {
      worker->stop();
      EXPECT_TRUE(worker->wait(kWait));
    }
  }
  void start_worker(WorkerOptions o = {}) {
    o.hostname = "celery@worker-test";
    if (o.concurrency == 0 && o.pool == "threads") o.concurrency = 2;
    o.poll_interval = 20ms;
    worker = std::make_unique<Worker>(*app, o);
    worker->start();
  }
  // Publishes a raw envelope to the default queue.
  void publish_raw(const std::string& envelope) { app->broker().publish("celery", 0, envelope); }

  tqtest::TempDb db;
  std::string url;
  std::unique_ptr<App> app;
  std::unique_ptr<Worker> worker;
};

}  // namespace

TEST_P(TqWorker, ThreadsPoolRunsTasksConcurrently) {
  Gate gate;
  std::atomic<int> peak{0}, now{0};
  auto wait = app->task("tasks.wait", {}, [&] {
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
    gate.pass();
    --now;
    return n;
  });
  WorkerOptions o;
  o.concurrency = 3;
  start_worker(o);
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 3; ++i) rs.push_back(wait.delay());
  ASSERT_TRUE(gate.wait_waiting(3));  // all three are inside the task at once
  gate.open();
  for (auto& r : rs) r.get(kWait);
  EXPECT_EQ(peak.load(), 3);
}

TEST_P(TqWorker, SoloPoolRunsOneAtATimeInOrder) {
  std::atomic<int> now{0}, peak{0};
  std::mutex mu;
  std::vector<int> order;
  auto one = app->task("tasks.one", {"n"}, [&](int n) {
    peak = std::max(peak.load(), ++now);
    {
      std::lock_guard lock(mu);
      order.push_back(n);
    }
    --now;
    return n;
  });
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 20; ++i) rs.push_back(one.delay(i));
  WorkerOptions o;
  o.pool = "solo";
  start_worker(o);
  for (auto& r : rs) r.get(kWait);
  EXPECT_EQ(peak.load(), 1);
  std::lock_guard lock(mu);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
}

TEST_P(TqWorker, BadOptionsAreConfigErrors) {
  WorkerOptions o;
  o.pool = "gevent";
  Worker a(*app, o);
  EXPECT_THROW(a.start(), ConfigError);
  WorkerOptions p;
  p.prefetch_multiplier = 0;
  Worker b(*app, p);
  EXPECT_THROW(b.start(), ConfigError);
  WorkerOptions c;
  c.concurrency = -1;
  Worker d(*app, c);
  EXPECT_THROW(d.start(), ConfigError);
}

TEST_P(TqWorker, PrefetchMultiplierBoundsReservedMessages) {
  Gate gate;
  auto block = app->task("tasks.block", {}, [&] { gate.pass(); });
  std::vector<AsyncResult<void>> rs;
  for (int i = 0; i < 10; ++i) rs.push_back(block.delay());
  WorkerOptions o;
  o.concurrency = 1;
  o.prefetch_multiplier = 3;  // 1 running + 2 held
  start_worker(o);
  ASSERT_TRUE(gate.wait_waiting(1));
  ASSERT_TRUE(eventually([&] { return worker->reserved().size() == 2; }));
  EXPECT_EQ(worker->active().size(), 1u);
  EXPECT_EQ(app->broker().queue_length("celery"), 7u);
  EXPECT_EQ(worker->stats()["prefetch_count"], 3);
  gate.open();
  for (auto& r : rs) r.get(kWait);
}

TEST_P(TqWorker, SeveralQueues) {
  auto where = app->task("tasks.where", {}, [](Context& ctx) { return ctx.queue(); });
  WorkerOptions o;
  o.queues = {"alpha", "beta"};
  start_worker(o);
  CallOptions a, b;
  a.queue = "alpha";
  b.queue = "beta";
  EXPECT_EQ(where.apply_async(Json::array(), Json::object(), a).get(kWait), "alpha");
  EXPECT_EQ(where.apply_async(Json::array(), Json::object(), b).get(kWait), "beta");
  EXPECT_EQ(worker->queues(), (std::vector<std::string>{"alpha", "beta"}));
  auto ignored = where.delay();  // default queue "celery": not consumed
  EXPECT_THROW(ignored.get(200ms), celeriac::TimeoutError);
  EXPECT_EQ(app->broker().queue_length("celery"), 1u);
}

TEST_P(TqWorker, GracefulStopFinishesRunningAndPutsPrefetchedBack) {
  Gate gate;
  std::atomic<int> runs{0};
  auto slow = app->task("tasks.slow", {"n"}, [&](int n) {
    ++runs;
    gate.pass();
    return n;
  });
  std::vector<AsyncResult<int>> rs;
  for (int i = 0; i < 6; ++i) rs.push_back(slow.delay(i));
  WorkerOptions o;
  o.concurrency = 1;
  o.prefetch_multiplier = 4;
  start_worker(o);
  ASSERT_TRUE(gate.wait_waiting(1));
  ASSERT_TRUE(eventually([&] { return worker->reserved().size() == 3; }));
  std::thread stopper([&] { worker->stop(); });
  std::this_thread::sleep_for(50ms);  // stop() is under way while the task runs
  gate.open();
  stopper.join();
  ASSERT_TRUE(worker->wait(kWait));
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(rs[0].get(kWait), 0);  // the running task finished and stored its result
  // Nothing else ran; every other message is back in the queue.
  EXPECT_EQ(app->broker().queue_length("celery"), 5u);
  worker.reset();
  start_worker();
  for (std::size_t i = 1; i < rs.size(); ++i) EXPECT_EQ(rs[i].get(kWait), static_cast<int>(i));
}

TEST_P(TqWorker, ImmediateStopPutsBackUnackedButNotAcked) {
  Gate gate;
  auto early = app->task("tasks.early", {}, [&] { gate.pass(); });
  TaskOptions late_opts;
  late_opts.acks_late = true;
  auto late = app->task(
      "tasks.late", {}, [&] { gate.pass(); }, late_opts);
  auto r1 = early.delay();
  auto r2 = late.delay();
  WorkerOptions o;
  o.concurrency = 2;
  o.prefetch_multiplier = 1;
  start_worker(o);
  ASSERT_TRUE(gate.wait_waiting(2));
  worker->stop(true);
  // The acks_late message is unacknowledged while running: it is back in
  // the queue; the early-acked one is not (it was acknowledged).
  auto other = make_broker(url);
  auto back = other->reserve(std::vector<std::string>{"celery"}, 5, 500ms);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(decode(back[0].envelope).task, "tasks.late");
  EXPECT_TRUE(back[0].redelivered);
  other->ack(back[0]);
  gate.open();
  ASSERT_TRUE(worker->wait(kWait));
}

TEST_P(TqWorker, EventsInCeleryOrder) {
  auto ok = app->task("tasks.ok", {}, [] { return 1; });
  auto boom = app->task("tasks.boom", {}, []() -> int { throw std::runtime_error("x"); });
  auto again = app->task("tasks.again", {}, [](Context& ctx) {
    if (ctx.retries() == 0) ctx.retry(0.01);
    return 2;
  });
  start_worker();
  auto r1 = ok.delay();
  auto r2 = boom.delay();
  auto r3 = again.delay();
  r1.get(kWait);
  EXPECT_THROW(r2.get(kWait), TaskError);
  r3.get(kWait);
  if (GetParam() != "memory") return;  // the recorder is registered for memory:// only
  ASSERT_TRUE(eventually([&] { return event_log().types_of(r3.id()).size() == 6; }));
  EXPECT_EQ(event_log().types_of(r1.id()),
            (std::vector<std::string>{"task-received", "task-started", "task-succeeded"}));
  EXPECT_EQ(event_log().types_of(r2.id()),
            (std::vector<std::string>{"task-received", "task-started", "task-failed"}));
  EXPECT_EQ(event_log().types_of(r3.id()),
            (std::vector<std::string>{"task-received", "task-started", "task-retried",
                                      "task-received", "task-started", "task-succeeded"}));
}

TEST_P(TqWorker, TrackStartedStoresStartedFirst) {
  Gate gate;
  TaskOptions o;
  o.track_started = true;
  auto t = app->task(
      "tasks.tracked", {},
      [&] {
        gate.pass();
        return 7;
      },
      o);
  start_worker();
  auto r = t.delay();
  ASSERT_TRUE(gate.wait_waiting(1));
  EXPECT_EQ(r.state(), State::Started);
  gate.open();
  EXPECT_EQ(r.get(kWait), 7);
  EXPECT_EQ(r.state(), State::Success);
}

TEST_P(TqWorker, RevokedBeforeStartIsNotRun) {
  std::atomic<int> runs{0};
  auto t = app->task("tasks.t", {}, [&] { return ++runs; });
  CallOptions o;
  o.task_id = "revoke-me";
  auto r = t.apply_async(Json::array(), Json::object(), o);
  WorkerOptions w;
  w.concurrency = 1;
  worker = std::make_unique<Worker>(*app, w);
  worker->revoke("revoke-me", false);
  worker->start();
  try {
    r.get(kWait);
    ADD_FAILURE() << "revoked task ran";
  } catch (const TaskError& e) {
    EXPECT_EQ(e.exc_type(), "TaskRevokedError");
    EXPECT_EQ(e.state(), "REVOKED");
  }
  EXPECT_EQ(runs.load(), 0);
}

// ---- bad input ----

namespace {

const std::string kAddId = "cd472d41-beb9-428f-a7aa-74c631bc0279";

std::string add_with_body(const std::string& body_json) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  env["body"] = base64_encode(body_json);
  return dumps(env);
}

std::string add_edited(const std::function<void(OrderedJson&)>& edit) {
  OrderedJson env = loads_ordered(read_sample("task_add.json"));
  edit(env);
  return dumps(env);
}

std::string with_id(std::string envelope, const std::string& id) {
  for (std::size_t p; (p = envelope.find(kAddId)) != std::string::npos;)
    envelope.replace(p, kAddId.size(), id);
  return envelope;
}

}  // namespace

TEST_P(TqWorker, EveryBadInputIsDeadLetteredAndTheWorkerGoesOn) {
  auto add = app->task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  struct Case {
    std::string envelope;
    std::string reason;             // fragment of the dead-letter reason
    std::optional<std::string> id;  // FAILURE stored for it
  };
  std::vector<Case> cases{
      {"this is not json", "envelope is not JSON", std::nullopt},
      {"[1, 2, 3]", "envelope must be a JSON object", std::nullopt},
      {with_id(add_edited([](OrderedJson& e) { e["body"] = "!!!"; }), "id-undecodable"),
       "undecodable body", "id-undecodable"},
      {with_id(add_with_body("[[2, 3], {}]"), "id-two-element"), "2-element array",
       "id-two-element"},
      {with_id(add_edited([](OrderedJson& e) { e.erase("headers"); }), "id-no-headers"),
       "no 'headers'", std::nullopt},
      {with_id(add_edited([](OrderedJson& e) { e["headers"]["retries"] = "three"; }),
               "id-bad-type"),
       "retries", "id-bad-type"},
      {with_id(add_edited([](OrderedJson& e) { e["headers"]["task"] = "tasks.unknown"; }),
               "id-unknown"),
       "unregistered task 'tasks.unknown'", "id-unknown"},
      {with_id(add_with_body("[[2, 3], {}, {\"callbacks\": null, \"errbacks\": null, "
                             "\"chain\": [{\"task\": 5}], \"chord\": null}]"),
               "id-bad-chain"),
       "embed.chain[0]: 'task' must be a non-empty string", "id-bad-chain"},
      {with_id(add_with_body("[[2, 3], {}, {}]") + std::string(2000, ' '), "id-oversized"),
       "oversized", "id-oversized"},
  };
  for (auto& c : cases) publish_raw(c.envelope);
  WorkerOptions o;
  o.max_message_size = 1500;
  start_worker(o);
  auto good = add.delay(20, 22);
  EXPECT_EQ(good.get(kWait), 42);
  ASSERT_TRUE(eventually([&] { return worker->counters().dead_lettered == cases.size(); }));
  auto dead = app->broker().dead_letters(100);
  ASSERT_EQ(dead.size(), cases.size());
  for (auto& c : cases) {
    bool found = false;
    for (auto& d : dead)
      found = found || (d.envelope == c.envelope && d.reason.find(c.reason) != std::string::npos);
    EXPECT_TRUE(found) << "no dead letter with reason '" << c.reason << "'";
    if (!c.id) continue;
    auto meta = app->backend().get(*c.id);
    ASSERT_TRUE(meta) << "no FAILURE stored for " << *c.id;
    EXPECT_EQ(meta->status, State::Failure) << *c.id;
  }
  EXPECT_TRUE(worker->running());
  // The counter is bumped just after the result is stored.
  EXPECT_TRUE(eventually([&] { return worker->counters().succeeded == 1u; }));
}

// The captured Celery canvas messages run (docs/tq-canvas.md); a chord
// header whose chord size was never recorded leaves its body pending.
TEST_P(TqWorker, CeleryCanvasSamplesRun) {
  app->task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  app->task("tasks.mul", {"x", "y"}, [](int x, int y) { return x * y; });
  app->task("tasks.echo", {"value"}, [](Json v) { return v; });
  app->task("tasks.fail", {"message"},
            [](std::string m) -> int { throw std::invalid_argument(m); });
  for (auto s : {"task_link.json", "task_link_error.json", "task_chain_first.json"})
    publish_raw(read_sample(s));
  start_worker();
  EXPECT_EQ(app->async_result("9a62f9ed-7c23-42b3-9d30-6513339f54cd").get(kWait), 20);  // link
  EXPECT_EQ(app->async_result("d0e53d7b-c10a-4d5b-b828-eba18e4ca4f9").get(kWait), 17);  // chain
  // link_error: the errback echoes the failed task's id
  EXPECT_EQ(app->async_result("1ac06a0d-8c00-4c0c-8809-59b9cfd9d220").get(kWait),
            "4ad8eb26-5b30-4f96-95fe-46603c1afc9d");
  auto first = app->backend().get("b2bb48f5-c47c-4d84-9bcc-7e76318327f6");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->children,
            Json::parse(R"([[["d48da5fe-85ce-49b9-a61f-f0be74913b38", null], null]])"));
}

TEST_P(TqWorker, StatsRegisteredActiveReserved) {
  app->task("tasks.a", {}, [] { return 1; });
  app->task("tasks.b", {}, [] { return 2; });
  start_worker();
  EXPECT_EQ(worker->registered(), (std::vector<std::string>{"tasks.a", "tasks.b"}));
  EXPECT_EQ(worker->hostname(), "celery@worker-test");
  Json s = worker->stats();
  EXPECT_EQ(s["pool"]["implementation"], "threads");
  EXPECT_EQ(s["pool"]["max-concurrency"], 2);
  EXPECT_TRUE(worker->active().empty());
  EXPECT_TRUE(worker->reserved().empty());
  EXPECT_TRUE(worker->running());
}

INSTANTIATE_TEST_SUITE_P(Transports, TqWorker, ::testing::Values("memory", "sqlite"));
