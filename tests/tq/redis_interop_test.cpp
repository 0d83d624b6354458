// Interoperability with real Python Celery 5.2 (/usr/bin/python3) over a real
// redis-server: Python clients call C++ tasks run by a celeriac Worker, C++
// clients call Python tasks, both kinds of worker share one queue, the real
// `celery inspect` sees the C++ worker, and the C++ worker survives a
// redis-server restart and a shutdown with messages in flight.
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "celeriac/tq/app.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::redis;
using celeriac::tq::test::CeleryWorker;
using celeriac::tq::test::PyCall;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::run_python_client;
using tq::Json;
using namespace std::chrono_literals;

namespace {

const std::string kUnicode = "h\u00e9llo w\u00f6rld \u2713 \U0001F600 \u65e5\u672c";
const std::string kDoneList = "celeriac.test.done";

// What the C++ tasks saw, for assertions the results cannot carry.
struct Journal {
  std::mutex mu;
  std::vector<std::string> order;     // tasks.record tokens, in execution order
  std::multiset<std::string> marked;  // tasks.mark tokens
  std::atomic<int> sleeping{0};       // tasks.sleep calls started
  void record(const std::string& token) {
    std::lock_guard lk(mu);
    order.push_back(token);
  }
  std::vector<std::string> recorded() {
    std::lock_guard lk(mu);
    return order;
  }
  std::size_t marked_count() {
    std::lock_guard lk(mu);
    return marked.size();
  }
};

// The C++ counterparts of tests/tq/python/celeriac_test_tasks.py (same names),
// plus a few that only the C++ side needs.
void register_cpp_tasks(tq::App& app, Journal& journal, const std::string& redis_url) {
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  app.task("tasks.mul", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x * y; });
  app.task("tasks.echo", {"value"}, [](Json v) { return v; });
  app.task("tasks.fail", {"message"}, [](std::string m) -> int { throw std::invalid_argument(m); });
  app.task("tasks.key_error", {"key"},
           [](std::string k) -> int { throw tq::TaskError("KeyError", "builtins", k); });
  app.task("tasks.whoami", {}, [] { return std::string("cpp"); });
  tq::TaskOptions no_result;
  no_result.ignore_result = true;
  app.task(
      "tasks.noop", {}, [] {}, no_result);
  app.task("tasks.retry_twice", {"value"}, [](tq::Context& ctx, Json value) {
    if (ctx.retries() < 2) ctx.retry(0.0);
    return Json::array({value, ctx.retries()});
  });
  app.task("tasks.context", {}, [](tq::Context& ctx) {
    return Json{{"eta", ctx.eta().has_value()},
                {"expires", ctx.expires().has_value()},
                {"queue", ctx.queue()},
                {"priority", ctx.message().priority},
                {"hostname", ctx.hostname()}};
  });
  app.task("tasks.record", {"token"}, [&journal](std::string token) {
    journal.record(token);
    return token;
  });
  app.task("tasks.sleep", {"seconds"}, [&journal](double s) {
    ++journal.sleeping;
    std::this_thread::sleep_for(std::chrono::duration<double>(s));
    return s;
  });
  // Like the Python tasks.mark: RPUSH celeriac.test.done "cpp:<token>".
  auto conn = std::make_shared<std::optional<r::Connection>>();
  auto conn_mu = std::make_shared<std::mutex>();
  app.task("tasks.mark", {"token"}, [&journal, conn, conn_mu, redis_url](Json token) {
    std::string t = token.is_string() ? token.get<std::string>() : token.dump();
    {
      std::lock_guard lk(journal.mu);
      journal.marked.insert(t);
    }
    std::lock_guard lk(*conn_mu);
    for (int attempt = 0;; ++attempt) {  // the restart test takes the server away
      try {
        if (!*conn || !(*conn)->is_open()) conn->emplace(r::Connection::connect(redis_url));
        (*conn)->command({"RPUSH", kDoneList, "cpp:" + t});
        return std::string("cpp");
      } catch (const std::exception&) {
        conn->reset();
        if (attempt == 100) throw;
        std::this_thread::sleep_for(50ms);
      }
    }
  });
}

tq::WorkerOptions cpp_worker_options(int concurrency = 2, int prefetch = 4) {
  tq::WorkerOptions o;
  o.hostname = "cpp@celeriac-test";
  o.concurrency = concurrency;
  o.prefetch_multiplier = prefetch;
  o.poll_interval = 200ms;
  return o;
}

// Waits (bounded) until `done()`; false on timeout.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// One outcome of celeriac_client.py, found by position.
const Json& outcome(const Json& all, std::size_t i) {
  if (!all.is_array() || i >= all.size())
    throw std::runtime_error("no outcome " + std::to_string(i) + " in " + all.dump());
  return all[i];
}

// A C++ app + worker on `server` with the test tasks, started.
struct CppSide {
  Journal journal;
  tq::App app;
  tq::Worker worker;
  CppSide(const RedisServer& server, tq::WorkerOptions o)
      : app(server.url(), server.url()),
        worker((register_cpp_tasks(app, journal, server.url()), app), std::move(o)) {
    worker.start();
  }
  ~CppSide() {
    worker.stop();
    worker.wait(20s);
  }
};

}  // namespace

// ---- (a) a Python client calls C++ tasks ----

TEST(CeleryInterop, PythonClientCallsCppTasksWithArgsKwargsAndValues) {
  RedisServer server;
  CppSide cpp(server, cpp_worker_options());
  const Json nested = {{"list", {1, 2.5, "three", nullptr, true}},
                       {"map", {{"inner", {{"deep", Json::array({Json::object()})}}}}},
                       {"text", kUnicode}};
  const std::int64_t big = (std::int64_t{1} << 62) + 7;
  const std::uint64_t huge = (std::uint64_t{1} << 63) + 11;  // above int64, fits Python and uint64
  auto out = run_python_client(
      server.url(), {
                        PyCall{"tasks.add", {2, 3}},
                        PyCall{"tasks.add", Json::array(), {{"y", 10}, {"x", 4}}},
                        PyCall{"tasks.add", {1}, {{"y", 2}}},
                        PyCall{"tasks.echo", {kUnicode}},
                        PyCall{"tasks.echo", {nested}},
                        PyCall{"tasks.add", {big, 1}},
                        PyCall{"tasks.echo", {huge}},
                        PyCall{"tasks.mul", {std::int64_t{1} << 20, std::int64_t{1} << 20}},
                        PyCall{"tasks.whoami"},
                    });
  ASSERT_EQ(out.size(), 9u) << out.dump();
  for (auto& o : out) EXPECT_EQ(o["state"], "SUCCESS") << o.dump();
  EXPECT_EQ(outcome(out, 0)["result"], 5);
  EXPECT_EQ(outcome(out, 1)["result"], 14);
  EXPECT_EQ(outcome(out, 2)["result"], 3);
  EXPECT_EQ(outcome(out, 3)["result"], kUnicode);
  EXPECT_EQ(outcome(out, 4)["result"], nested);
  EXPECT_EQ(outcome(out, 5)["result"].get<std::int64_t>(), big + 1);
  EXPECT_EQ(outcome(out, 6)["result"].get<std::uint64_t>(), huge);
  EXPECT_EQ(outcome(out, 7)["result"].get<std::int64_t>(), std::int64_t{1} << 40);
  EXPECT_EQ(outcome(out, 8)["result"], "cpp");
}

TEST(CeleryInterop, PythonSeesCppExceptionsWithPythonTypes) {
  RedisServer server;
  CppSide cpp(server, cpp_worker_options());
  auto out = run_python_client(
      server.url(), {
                        PyCall{"tasks.fail", {"bad value"}}, PyCall{"tasks.key_error", {"missing"}},
                        PyCall{"tasks.add", {1, 2, 3}},        // wrong arity
                        PyCall{"tasks.add", {"one", 2}},       // wrong type
                        PyCall{"tasks.add", {1}, {{"z", 2}}},  // unknown keyword
                        PyCall{"tasks.does_not_exist", {1}},   // unregistered
                    });
  ASSERT_EQ(out.size(), 6u) << out.dump();
  EXPECT_EQ(outcome(out, 0)["state"], "FAILURE");
  EXPECT_EQ(outcome(out, 0)["exc_type"], "ValueError");
  EXPECT_EQ(outcome(out, 0)["exc_module"], "builtins");
  EXPECT_EQ(outcome(out, 0)["exc_args"], Json::array({"bad value"}));
  EXPECT_EQ(outcome(out, 1)["exc_type"], "KeyError");
  EXPECT_EQ(outcome(out, 1)["exc_module"], "builtins");
  EXPECT_EQ(outcome(out, 1)["exc_args"], Json::array({"missing"}));
  for (std::size_t i : {2u, 3u, 4u}) {
    EXPECT_EQ(outcome(out, i)["state"], "FAILURE") << out[i].dump();
    EXPECT_EQ(outcome(out, i)["exc_type"], "TypeError") << out[i].dump();
    EXPECT_EQ(outcome(out, i)["exc_module"], "builtins") << out[i].dump();
  }
  EXPECT_NE(outcome(out, 2)["exc_args"][0].get<std::string>().find(
                "takes 2 positional arguments but 3 were given"),
            std::string::npos)
      << out[2].dump();
  EXPECT_NE(outcome(out, 3)["exc_args"][0].get<std::string>().find("'x'"), std::string::npos)
      << out[3].dump();
  EXPECT_NE(
      outcome(out, 4)["exc_args"][0].get<std::string>().find("unexpected keyword argument 'z'"),
      std::string::npos)
      << out[4].dump();
  EXPECT_EQ(outcome(out, 5)["state"], "FAILURE");
  EXPECT_EQ(outcome(out, 5)["exc_type"], "NotRegistered");
  EXPECT_EQ(cpp.worker.counters().failed, 5u);
}

TEST(CeleryInterop, PythonClientRetriesExpiresAndCountdownOnCppWorker) {
  RedisServer server;
  CppSide cpp(server, cpp_worker_options());
  auto out = run_python_client(
      server.url(),
      {
          PyCall{"tasks.retry_twice", {"again"}},
          PyCall{"tasks.whoami",
                 Json::array(),
                 Json::object(),
                 {{"expires_in", -5}}},  // already expired
          PyCall{"tasks.context", Json::array(), Json::object(), {{"countdown", 1.5}}},
          PyCall{"tasks.context",
                 Json::array(),
                 Json::object(),
                 {{"expires_in", 60}, {"queue", "celery"}}},
      });
  ASSERT_EQ(out.size(), 4u) << out.dump();
  EXPECT_EQ(outcome(out, 0)["state"], "SUCCESS") << out[0].dump();
  EXPECT_EQ(outcome(out, 0)["result"], Json::array({"again", 2}));
  EXPECT_EQ(outcome(out, 1)["state"], "REVOKED") << out[1].dump();
  EXPECT_EQ(outcome(out, 1)["exc_type"], "TaskRevokedError");
  EXPECT_EQ(outcome(out, 2)["state"], "SUCCESS") << out[2].dump();
  EXPECT_EQ(outcome(out, 2)["result"]["eta"], true);
  EXPECT_EQ(outcome(out, 3)["result"]["expires"], true);
  EXPECT_EQ(outcome(out, 3)["result"]["hostname"], "cpp@celeriac-test");
  auto c = cpp.worker.counters();
  EXPECT_EQ(c.retried, 2u);
  EXPECT_EQ(c.revoked, 1u);
}

TEST(CeleryInterop, PythonPrioritiesAreHonoredByTheCppWorker) {
  RedisServer server;
  // Python sends first (nobody consumes yet), then one C++ slot drains them.
  std::vector<PyCall> calls;
  const std::vector<std::pair<std::string, int>> sent = {{"low-9", 9}, {"mid-5", 5}, {"high-0", 0},
                                                         {"mid-4", 4}, {"low-8", 8}, {"high-1", 1}};
  for (auto& [token, prio] : sent) {
    PyCall c{"tasks.record", {token}};
    c.options = {{"priority", prio}};
    c.timeout = 0.01;  // do not wait: nobody consumes yet
    calls.push_back(c);
  }
  run_python_client(server.url(), calls);
  EXPECT_EQ(server.cli({"LLEN", "celery"}), "2");
  Journal* journal = nullptr;
  tq::WorkerOptions o = cpp_worker_options(1, 1);
  o.pool = "solo";
  CppSide cpp(server, o);
  journal = &cpp.journal;
  ASSERT_TRUE(eventually([&] { return journal->recorded().size() == sent.size(); }, 20s));
  // kombu's steps: 0-2 first, then 3-5, then 6-8, then 9; FIFO within a step
  EXPECT_EQ(journal->recorded(),
            (std::vector<std::string>{"high-0", "high-1", "mid-5", "mid-4", "low-8", "low-9"}));
}

// ---- (b) a C++ client calls Python tasks ----

TEST(CeleryInterop, CppClientCallsPythonTasksAndReadsResultsAndErrors) {
  RedisServer server;
  CeleryWorker py(server.url());
  tq::App app(server.url(), server.url());
  const Json nested = {{"a", {1, 2, {{"b", nullptr}}}}, {"u", kUnicode}, {"f", 0.25}};
  auto add = app.send_task("tasks.add", {20, 22});
  auto kw = app.send_task("tasks.add", Json::array(), {{"x", "con"}, {"y", "cat"}});
  auto echo = app.send_task("tasks.echo", {nested});
  auto big = app.send_task("tasks.mul", {std::int64_t{1} << 31, std::int64_t{1} << 31});
  auto fail = app.send_task("tasks.fail", {"from python"});
  auto terr = app.send_task("tasks.type_error");
  auto retry = app.send_task("tasks.retry_twice", {"py"});
  auto missing = app.send_task("tasks.nope", {1});
  tq::CallOptions later;
  later.countdown = 1.0;
  auto delayed = app.send_task("tasks.whoami", Json::array(), Json::object(), later);
  tq::CallOptions expired;
  expired.expires_in = -5.0;
  auto gone = app.send_task("tasks.whoami", Json::array(), Json::object(), expired);

  EXPECT_EQ(add.get(20s), 42);
  EXPECT_EQ(kw.get(20s), "concat");
  EXPECT_EQ(echo.get(20s), nested);
  EXPECT_EQ(big.get(20s).get<std::int64_t>(), std::int64_t{1} << 62);
  EXPECT_EQ(retry.get(20s), Json::array({"py", 2}));
  EXPECT_EQ(delayed.get(20s), "py");
  try {
    fail.get(20s);
    ADD_FAILURE() << "tasks.fail succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
    EXPECT_EQ(e.exc_module(), "builtins");
    EXPECT_EQ(e.message(), "from python");
    EXPECT_NE(e.traceback().find("ValueError: from python"), std::string::npos) << e.traceback();
    EXPECT_EQ(e.state(), "FAILURE");
  }
  EXPECT_TRUE(fail.failed());
  EXPECT_EQ(fail.state(), tq::State::Failure);
  try {
    terr.get(20s);
    ADD_FAILURE() << "tasks.type_error succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "TypeError");
    EXPECT_EQ(e.message(), "wrong type in python");
  }
  try {
    missing.get(20s);
    ADD_FAILURE() << "an unregistered task succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "NotRegistered");
    EXPECT_EQ(e.exc_module(), "celery.exceptions");
  }
  try {
    gone.get(20s);
    ADD_FAILURE() << "an expired task ran";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "TaskRevokedError");
    EXPECT_EQ(e.state(), "REVOKED");
  }
  EXPECT_TRUE(add.successful());
  EXPECT_EQ(add.meta()->status, tq::State::Success);
}

TEST(CeleryInterop, ManyCppResultsAndATimeoutThatDoesNotHang) {
  RedisServer server;
  CeleryWorker py(server.url());
  tq::App app(server.url(), server.url());
  std::vector<tq::AsyncResult<Json>> results;
  for (int i = 0; i < 20; ++i) results.push_back(app.send_task("tasks.add", {i, i}));
  for (int i = 0; i < 20; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get(30s), 2 * i);
  // a timeout is a TimeoutError, not a hang
  auto never = app.send_task("tasks.add", {1, 1}, Json::object(), [] {
    tq::CallOptions o;
    o.queue = "nobody-consumes-this";
    return o;
  }());
  EXPECT_THROW(never.get(300ms), celeriac::TimeoutError);
  EXPECT_FALSE(never.ready());
}

// ---- (c) a Python and a C++ worker share one queue ----

namespace {

// `kTasks` tasks on one queue consumed by a Python worker and a C++ worker
// reserving with `cpp_options`: each runs exactly once, every result is
// stored by whoever ran it, and nothing is left in kombu's unacked.
void share_a_queue(tq::WorkerOptions cpp_options, int kTasks) {
  RedisServer server;
  CeleryWorker py(server.url());
  CppSide cpp(server, std::move(cpp_options));
  tq::App client(server.url(), server.url());
  std::vector<tq::TaskMessage> batch;
  std::vector<std::string> ids;
  for (int i = 0; i < kTasks; ++i) {
    batch.push_back(client.build_message("tasks.mark", {std::to_string(i)}, Json::object(), {}));
    ids.push_back(batch.back().id);
  }
  client.publish_many(batch);
  r::Connection redis = r::Connection::connect(server.url());
  ASSERT_TRUE(eventually(
      [&] {
        return redis.command({"LLEN", kDoneList}).integer() >= kTasks;
      },
      60s))
      << "done: " << redis.command({"LLEN", kDoneList}).integer();
  // both results agree with the journal of who ran what
  std::map<std::string, int> runs;
  int py_runs = 0, cpp_runs = 0;
  r::Reply done = redis.command({"LRANGE", kDoneList, "0", "-1"});
  for (auto& e : done.elements()) {
    std::string v = e.str();
    ++runs[v.substr(v.find(':') + 1)];
    (v.rfind("py:", 0) == 0 ? py_runs : cpp_runs)++;
  }
  EXPECT_EQ(runs.size(), static_cast<std::size_t>(kTasks));
  for (auto& [token, n] : runs) EXPECT_EQ(n, 1) << "task " << token << " ran " << n << " times";
  EXPECT_GT(py_runs, 0);
  EXPECT_GT(cpp_runs, 0);
  EXPECT_EQ(static_cast<std::size_t>(cpp_runs), cpp.journal.marked_count());
  // every result is stored once, by whoever ran it
  int by_py = 0;
  for (auto& id : ids) {
    auto meta = client.backend().get(id);
    ASSERT_TRUE(meta) << id;
    EXPECT_EQ(meta->status, tq::State::Success);
    by_py += meta->result == "py";
  }
  EXPECT_EQ(by_py, py_runs);
  EXPECT_TRUE(eventually([&] { return redis.command({"HLEN", "unacked"}).integer() == 0; }, 10s));
  EXPECT_TRUE(eventually(
      [&] {
        return redis.command({"ZCARD", "unacked_index"}).integer() == 0;
      },
      10s));
}

}  // namespace

TEST(CeleryInterop, PythonAndCppWorkersShareAQueueEveryTaskOnce) {
  share_a_queue(cpp_worker_options(1, 1), 200);
}

// The C++ worker reserves up to 128 messages per round trip (one Lua call
// moving them into unacked/unacked_index as kombu would) beside a Python
// worker reserving its own way.
TEST(CeleryInterop, BatchedReservesShareAQueueWithAPythonWorker) {
  share_a_queue(cpp_worker_options(2, 64), 1000);
}

// ---- (d) the real Celery CLI sees the C++ worker ----

TEST(CeleryInterop, CeleryInspectPingListsTheCppWorker) {
  RedisServer server;
  CppSide cpp(server, cpp_worker_options());
  auto ping =
      celeriac::tq::test::run_celery_cli(server.url(), {"inspect", "ping", "--timeout", "3"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("cpp@celeriac-test: OK"), std::string::npos) << ping.output;
  EXPECT_NE(ping.output.find("pong"), std::string::npos) << ping.output;
  auto reg = celeriac::tq::test::run_celery_cli(
      server.url(),
      {"inspect", "registered", "-d", "cpp@celeriac-test", "--timeout", "3", "--json"});
  EXPECT_EQ(reg.exit_code, 0) << reg.output;
  EXPECT_NE(reg.output.find("tasks.retry_twice"), std::string::npos) << reg.output;
  // a node that does not exist: Celery reports nobody replied
  auto none = celeriac::tq::test::run_celery_cli(
      server.url(), {"inspect", "ping", "-d", "ghost@nowhere", "--timeout", "1"});
  EXPECT_NE(none.exit_code, 0) << none.output;
}

// ---- (e) redis-server killed and restarted mid-stream ----

TEST(CeleryInterop, CppWorkerReconnectsAfterRedisRestartAndLosesNothing) {
  RedisServer::Options so;
  so.persistent = true;  // AOF fsync always: what Redis acknowledged survives SIGKILL
  RedisServer server(so);
  auto ring = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(2000);
  auto previous = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>("interop", spdlog::sinks_init_list{ring});
  spdlog::set_default_logger(logger);
  struct RestoreLogger {
    std::shared_ptr<spdlog::logger> p;
    ~RestoreLogger() { spdlog::set_default_logger(p); }
  } restore{previous};

  CppSide cpp(server, cpp_worker_options(2, 2));
  tq::App producer(server.url(), server.url());
  constexpr int kTasks = 300;
  std::set<std::string> acknowledged;  // publishes Redis confirmed
  std::thread killer;
  for (int i = 0; i < kTasks; ++i) {
    if (i == kTasks / 2)
      killer = std::thread([&] {
        server.kill_hard();
        std::this_thread::sleep_for(500ms);
        server.start();
      });
    tq::CallOptions o;
    o.ignore_result = true;
    auto m = producer.build_message("tasks.mark", {std::to_string(i)}, Json::object(), o);
    for (int attempt = 0; attempt < 200; ++attempt) {
      try {
        producer.broker().publish(m.queue, m.priority, tq::encode(m));
        acknowledged.insert(std::to_string(i));
        break;
      } catch (const tq::BrokerError&) {
        std::this_thread::sleep_for(50ms);
      }
    }
    if (i % 10 == 0) std::this_thread::sleep_for(5ms);  // a stream, not one burst
  }
  killer.join();
  ASSERT_GE(acknowledged.size(), static_cast<std::size_t>(kTasks - 5));
  bool all = eventually(
      [&] {
        std::lock_guard lk(cpp.journal.mu);
        for (auto& t : acknowledged)
          if (!cpp.journal.marked.count(t)) return false;
        return true;
      },
      60s);
  std::string log;
  for (auto& line : ring->last_formatted()) log += line;
  EXPECT_TRUE(all) << "ran " << cpp.journal.marked_count() << " of " << acknowledged.size()
                   << "; log:\n"
                   << log;
  // the worker kept consuming after the restart (it logs "retrying in" only
  // when the outage outlasts a reserve's own reconnect window, which a 500 ms
  // restart may not: publishes now return before Redis confirms them, so the
  // stream can end before the kill lands)
  EXPECT_TRUE(cpp.worker.running());
  tq::CallOptions o;
  auto after = producer.send_task("tasks.add", {1, 2}, Json::object(), o);
  EXPECT_EQ(after.get(20s), 3);
}

// ---- (f) shutdown with messages in flight ----

TEST(CeleryInterop, ShutdownPutsPrefetchedMessagesBackForAPythonWorker) {
  RedisServer server;
  tq::App client(server.url(), server.url());
  std::vector<tq::AsyncResult<Json>> results;
  {
    CppSide cpp(server, cpp_worker_options(1, 4));
    for (int i = 0; i < 8; ++i) results.push_back(client.send_task("tasks.sleep", {0.4}));
    ASSERT_TRUE(eventually([&] { return cpp.journal.sleeping.load() >= 1; }, 20s));
    // one running, more prefetched (held in unacked by this worker)
    ASSERT_TRUE(eventually([&] { return server.cli({"HLEN", "unacked"}) != "0"; }, 10s));
    cpp.worker.stop();
    ASSERT_TRUE(cpp.worker.wait(20s));
    // nothing left reserved: what did not finish is back on the queue, redelivered
    EXPECT_EQ(server.cli({"HLEN", "unacked"}), "0");
    EXPECT_EQ(server.cli({"ZCARD", "unacked_index"}), "0");
    auto ran = static_cast<std::size_t>(cpp.journal.sleeping.load());
    EXPECT_EQ(std::stoul(server.cli({"LLEN", "celery"})), results.size() - ran);
    std::string first = server.cli({"LINDEX", "celery", "-1"});
    EXPECT_NE(first.find("\"redelivered\": true"), std::string::npos) << first;
  }
  // a Python worker takes over the restored messages: every task ends once
  CeleryWorker py(server.url());
  for (auto& r : results) EXPECT_EQ(r.get(30s), 0.4);
  EXPECT_EQ(server.cli({"LLEN", "celery"}), "0");
}
