// Interoperability with real Python Celery 5.2 (/usr/bin/python3, py-amqp)
// over the private RabbitMQ node (results in a private redis-server): Python
// clients call C++ tasks, a C++ client calls Python tasks, both workers share
// one queue, `celery inspect ping` sees the C++ worker, and the C++ worker
// survives a RabbitMQ restart.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "amqp_env.hpp"
#include "celeriac/redis/connection.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::redis;
using celeriac::tq::test::CeleryWorker;
using celeriac::tq::test::PyCall;
using celeriac::tq::test::rabbit;
using celeriac::tq::test::RedisServer;
using celeriac::tq::test::run_python_client;
using tq::Json;
using namespace std::chrono_literals;

namespace {

const std::string kDoneList = "celeriac.test.done";

template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

const Json& outcome(const Json& all, std::size_t i) {
  if (!all.is_array() || i >= all.size())
    throw std::runtime_error("no outcome " + std::to_string(i) + " in " + all.dump());
  return all[i];
}

// Celery declares "celery" with x-max-priority 10 (task_queue_max_priority);
// the C++ side must declare it identically.
std::string cpp_url() {
  return rabbit().url("?max_priority=10");
}

// Per test: results in a fresh redis-server, an empty "celery" queue, and the
// Python side pointed at both (the children inherit the environment).
struct Fixture {
  RedisServer results;
  Fixture() {
    ::setenv("CELERIAC_TEST_RESULT_BACKEND", results.url().c_str(), 1);
    ::setenv("CELERIAC_TEST_MAX_PRIORITY", "10", 1);
    tq::amqp::AmqpBroker b(tq::Url::parse(cpp_url()));
    b.purge("celery");
  }
  ~Fixture() {
    ::unsetenv("CELERIAC_TEST_RESULT_BACKEND");
    ::unsetenv("CELERIAC_TEST_MAX_PRIORITY");
  }
};

struct Journal {
  std::mutex mu;
  std::vector<std::string> order;
  std::multiset<std::string> marked;
  std::vector<std::string> recorded() {
    std::lock_guard lk(mu);
    return order;
  }
};

void register_cpp_tasks(tq::App& app, Journal& journal, const std::string& redis_url) {
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  app.task("tasks.echo", {"value"}, [](Json v) { return v; });
  app.task("tasks.fail", {"message"}, [](std::string m) -> int { throw std::invalid_argument(m); });
  app.task("tasks.whoami", {}, [] { return std::string("cpp"); });
  app.task("tasks.retry_twice", {"value"}, [](tq::Context& ctx, Json value) {
    if (ctx.retries() < 2) ctx.retry(0.0);
    return Json::array({value, ctx.retries()});
  });
  app.task("tasks.context", {}, [](tq::Context& ctx) {
    return Json{{"eta", ctx.eta().has_value()},
                {"expires", ctx.expires().has_value()},
                {"queue", ctx.queue()}};
  });
  app.task("tasks.record", {"token"}, [&journal](std::string token) {
    std::lock_guard lk(journal.mu);
    journal.order.push_back(token);
    return token;
  });
  auto conn = std::make_shared<std::optional<r::Connection>>();
  auto conn_mu = std::make_shared<std::mutex>();
  app.task("tasks.mark", {"token"}, [conn, conn_mu, redis_url](Json token) {
    std::string t = token.is_string() ? token.get<std::string>() : token.dump();
    std::lock_guard lk(*conn_mu);
    if (!*conn) conn->emplace(r::Connection::connect(redis_url));
    (*conn)->command({"RPUSH", kDoneList, "cpp:" + t});
    return std::string("cpp");
  });
}

tq::WorkerOptions cpp_options(int concurrency = 2, int prefetch = 4) {
  tq::WorkerOptions o;
  o.hostname = "cpp@celeriac-amqp-test";
  o.concurrency = concurrency;
  o.prefetch_multiplier = prefetch;
  o.poll_interval = 200ms;
  return o;
}

struct CppSide {
  Journal journal;
  tq::App app;
  tq::Worker worker;
  CppSide(const RedisServer& results, tq::WorkerOptions o)
      : app(cpp_url(), results.url()),
        worker((register_cpp_tasks(app, journal, results.url()), app), std::move(o)) {
    worker.start();
  }
  ~CppSide() {
    worker.stop();
    worker.wait(20s);
  }
};

}  // namespace

TEST(CeleryAmqpInterop, PythonClientCallsCppTasks) {
  Fixture f;
  // Prefetch room for every call: Celery gives an already expired message
  // TTL 0, which RabbitMQ drops unless a consumer can take it at once.
  CppSide cpp(f.results, cpp_options(2, 16));
  const Json nested = {{"list", {1, 2.5, "three", nullptr, true}}, {"text", "h\u00e9llo \u2713"}};
  auto out = run_python_client(
      rabbit().pyamqp_url(),
      {
          PyCall{"tasks.add", {2, 3}},
          PyCall{"tasks.add", Json::array(), {{"y", 10}, {"x", 4}}},
          PyCall{"tasks.echo", {nested}},
          PyCall{"tasks.fail", {"bad value"}},
          PyCall{"tasks.does_not_exist", {1}},
          PyCall{"tasks.retry_twice", {"again"}},
          PyCall{"tasks.whoami", Json::array(), Json::object(), {{"expires_in", -5}}},
          PyCall{"tasks.context", Json::array(), Json::object(), {{"countdown", 1.5}}},
          PyCall{"tasks.whoami", Json::array(), Json::object(), {{"priority", 7}}},
      });
  ASSERT_EQ(out.size(), 9u) << out.dump();
  EXPECT_EQ(outcome(out, 0)["result"], 5);
  EXPECT_EQ(outcome(out, 1)["result"], 14);
  EXPECT_EQ(outcome(out, 2)["result"], nested);
  EXPECT_EQ(outcome(out, 3)["state"], "FAILURE");
  EXPECT_EQ(outcome(out, 3)["exc_type"], "ValueError");
  EXPECT_EQ(outcome(out, 3)["exc_args"], Json::array({"bad value"}));
  EXPECT_EQ(outcome(out, 4)["exc_type"], "NotRegistered");
  EXPECT_EQ(outcome(out, 5)["result"], Json::array({"again", 2}));
  EXPECT_EQ(outcome(out, 6)["state"], "REVOKED") << out[6].dump();
  EXPECT_EQ(outcome(out, 7)["state"], "SUCCESS") << out[7].dump();
  EXPECT_EQ(outcome(out, 7)["result"]["eta"], true);
  EXPECT_EQ(outcome(out, 8)["result"], "cpp");
  EXPECT_EQ(cpp.worker.counters().retried, 2u);
}

TEST(CeleryAmqpInterop, PythonPrioritiesAreRabbitPrioritiesForTheCppWorker) {
  Fixture f;
  std::vector<PyCall> calls;
  const std::vector<std::pair<std::string, int>> sent = {
      {"p1", 1}, {"p9", 9}, {"p4", 4}, {"p0", 0}, {"p8", 8}};
  for (auto& [token, prio] : sent) {
    PyCall c{"tasks.record", {token}};
    c.options = {{"priority", prio}};
    c.timeout = 0.01;  // do not wait: nobody consumes yet
    calls.push_back(c);
  }
  run_python_client(rabbit().pyamqp_url(), calls);
  tq::WorkerOptions o = cpp_options(1, 1);
  o.pool = "solo";
  CppSide cpp(f.results, o);
  ASSERT_TRUE(eventually([&] { return cpp.journal.recorded().size() == sent.size(); }, 30s));
  // RabbitMQ's meaning: higher is more urgent.
  EXPECT_EQ(cpp.journal.recorded(), (std::vector<std::string>{"p9", "p8", "p4", "p1", "p0"}));
}

TEST(CeleryAmqpInterop, CppClientCallsPythonWorker) {
  Fixture f;
  CeleryWorker py(rabbit().pyamqp_url());
  tq::App app(cpp_url(), f.results.url());
  auto add = app.send_task("tasks.add", {20, 22});
  auto fail = app.send_task("tasks.fail", {"from python"});
  auto retry = app.send_task("tasks.retry_twice", {"py"});
  tq::CallOptions later;
  later.countdown = 1.0;
  auto delayed = app.send_task("tasks.whoami", Json::array(), Json::object(), later);
  auto get = [&](tq::AsyncResult<Json>& r, const char* what) -> Json {
    try {
      return r.get(30s);
    } catch (const tq::TaskError&) {
      throw;
    } catch (const std::exception& e) {
      ADD_FAILURE() << what << " got no result: " << e.what();
      py.process().dump_log("python worker");
      return Json();
    }
  };
  EXPECT_EQ(get(add, "tasks.add"), 42);
  EXPECT_EQ(get(retry, "tasks.retry_twice"), Json::array({"py", 2}));
  EXPECT_EQ(get(delayed, "tasks.whoami with countdown"), "py");
  try {
    get(fail, "tasks.fail");
    ADD_FAILURE() << "tasks.fail succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
    EXPECT_EQ(e.message(), "from python");
  }
}

TEST(CeleryAmqpInterop, PythonAndCppWorkersShareAQueueEveryTaskOnce) {
  Fixture f;
  CeleryWorker py(rabbit().pyamqp_url());
  CppSide cpp(f.results, cpp_options(1, 1));
  tq::App client(cpp_url(), f.results.url());
  constexpr int kTasks = 200;
  std::vector<tq::TaskMessage> batch;
  for (int i = 0; i < kTasks; ++i)
    batch.push_back(client.build_message("tasks.mark", {std::to_string(i)}, Json::object(), {}));
  client.publish_many(batch);
  r::Connection redis = r::Connection::connect(f.results.url());
  ASSERT_TRUE(eventually(
      [&] {
        return redis.command({"LLEN", kDoneList}).integer() >= kTasks;
      },
      90s))
      << "done: " << redis.command({"LLEN", kDoneList}).integer();
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
}

TEST(CeleryAmqpInterop, CeleryInspectPingSeesTheCppWorker) {
  Fixture f;
  CppSide cpp(f.results, cpp_options());
  auto ping = celeriac::tq::test::run_celery_cli(rabbit().pyamqp_url(),
                                                 {"inspect", "ping", "--timeout", "3"});
  EXPECT_EQ(ping.exit_code, 0) << ping.output;
  EXPECT_NE(ping.output.find("cpp@celeriac-amqp-test: OK"), std::string::npos) << ping.output;
  EXPECT_NE(ping.output.find("pong"), std::string::npos) << ping.output;
  auto reg = celeriac::tq::test::run_celery_cli(
      rabbit().pyamqp_url(),
      {"inspect", "registered", "-d", "cpp@celeriac-amqp-test", "--timeout", "3", "--json"});
  EXPECT_EQ(reg.exit_code, 0) << reg.output;
  EXPECT_NE(reg.output.find("tasks.retry_twice"), std::string::npos) << reg.output;
  // and celeriac's own control client over AMQP
  auto client = tq::make_control_client(cpp_url());
  auto replies = client->broadcast("ping", Json::object(),
                                   std::vector<std::string>{"cpp@celeriac-amqp-test"}, 5s);
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0]["cpp@celeriac-amqp-test"]["ok"], "pong");
}

// ---- the rpc:// result backend ----

TEST(CeleryAmqpInterop, RpcBackendCppClientCppWorker) {
  Fixture f;
  Journal journal;
  tq::App worker_app(cpp_url(), "rpc://");
  register_cpp_tasks(worker_app, journal, f.results.url());
  tq::Worker worker(worker_app, cpp_options());
  worker.start();
  tq::App client(cpp_url(), "rpc://");
  auto sum = client.send_task("tasks.add", {40, 2});
  auto failed = client.send_task("tasks.fail", {"over rpc"});
  EXPECT_EQ(sum.get(30s), 42);
  try {
    failed.get(30s);
    ADD_FAILURE() << "tasks.fail succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
    EXPECT_EQ(e.message(), "over rpc");
  }
  worker.stop();
  worker.wait(20s);
}

TEST(CeleryAmqpInterop, RpcBackendPythonClientCppWorker) {
  Fixture f;
  ::setenv("CELERIAC_TEST_RESULT_BACKEND", "rpc://", 1);
  Journal journal;
  tq::App worker_app(cpp_url(), "rpc://");
  register_cpp_tasks(worker_app, journal, f.results.url());
  tq::Worker worker(worker_app, cpp_options());
  worker.start();
  auto out = run_python_client(rabbit().pyamqp_url(),
                               {PyCall{"tasks.add", {2, 3}}, PyCall{"tasks.fail", {"bad"}}});
  ASSERT_EQ(out.size(), 2u) << out.dump();
  EXPECT_EQ(outcome(out, 0)["result"], 5) << out.dump();
  EXPECT_EQ(outcome(out, 1)["exc_type"], "ValueError") << out.dump();
  worker.stop();
  worker.wait(20s);
}

TEST(CeleryAmqpInterop, RpcBackendCppClientPythonWorker) {
  Fixture f;
  ::setenv("CELERIAC_TEST_RESULT_BACKEND", "rpc://", 1);
  CeleryWorker py(rabbit().pyamqp_url());
  tq::App client(cpp_url(), "rpc://");
  auto sum = client.send_task("tasks.add", {20, 22});
  auto failed = client.send_task("tasks.fail", {"from python over rpc"});
  EXPECT_EQ(sum.get(30s), 42);
  try {
    failed.get(30s);
    ADD_FAILURE() << "tasks.fail succeeded";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ValueError");
  }
}

// amqps:// on both sides: Celery's pyamqp with broker_use_ssl (the test CA,
// CERT_REQUIRED) sends to the private node's TLS listener; the C++ worker
// consumes over its own TLS connection; results in Redis.
TEST(CeleryAmqpInterop, PythonClientOverAmqpsCallsCppWorker) {
  Fixture f;
  std::string ca = celeriac::tq::test::rabbit_certs().ca().string();
  ::setenv("CELERIAC_TEST_BROKER_CA", ca.c_str(), 1);
  Journal journal;
  tq::App app(rabbit().tls_url("?ssl_ca_certs=" + ca + "&max_priority=10"), f.results.url());
  register_cpp_tasks(app, journal, f.results.url());
  tq::Worker worker(app, cpp_options());
  worker.start();
  auto out = run_python_client(
      rabbit().tls_url(),
      {PyCall{"tasks.add", {2, 3}}, PyCall{"tasks.echo", {Json{{"k", "v\u00e9"}}}},
       PyCall{"tasks.fail", {"over tls"}}, PyCall{"tasks.whoami"}});
  ::unsetenv("CELERIAC_TEST_BROKER_CA");
  ASSERT_EQ(out.size(), 4u) << out.dump();
  EXPECT_EQ(outcome(out, 0)["result"], 5) << out.dump();
  EXPECT_EQ(outcome(out, 1)["result"], (Json{{"k", "v\u00e9"}})) << out.dump();
  EXPECT_EQ(outcome(out, 2)["exc_type"], "ValueError") << out.dump();
  EXPECT_EQ(outcome(out, 3)["result"], "cpp") << out.dump();
  worker.stop();
  EXPECT_TRUE(worker.wait(20s));
  EXPECT_EQ(worker.counters().succeeded, 3u);
}

// Python's app.control with pattern + matcher='pcre' (kombu: re.match, anchored
// at the start) selects the C++ worker exactly when it would select a Python one.
TEST(CeleryAmqpInterop, PcreAndGlobNodePatternsSelectAsKombuDoes) {
  Fixture f;
  CppSide cpp(f.results, cpp_options());
  // A case expected to select the worker waits for its one reply (limit=1,
  // generous timeout); one expected to select nobody waits a short while.
  const std::string script = R"(
import json, sys
from celeriac_test_tasks import app
out = {}
for matcher, pattern, selects in json.loads(sys.argv[1]):
    i = app.control.inspect(timeout=20 if selects else 1.5, limit=1 if selects else None,
                            pattern=pattern, matcher=matcher)
    out[matcher + ":" + pattern] = sorted(i.ping() or {})
print(json.dumps(out))
)";
  Json cases = Json::array(
      {Json::array({"pcre", "cpp@celeriac-.*", true}), Json::array({"pcre", "cpp@", true}),
       Json::array({"pcre", "celeriac-amqp", false}),  // re.match: no
       Json::array({"pcre", "py@.*", false}), Json::array({"glob", "cpp@*", true}),
       Json::array({"glob", "cpp@", false})});
  auto r = celeriac::tq::test::run_program({"/usr/bin/python3", "-c", script, cases.dump()}, 120s,
                                           celeriac::tq::test::celery_env(rabbit().pyamqp_url()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  Json got = Json::parse(r.output.substr(r.output.rfind('{')));
  const Json me = Json::array({"cpp@celeriac-amqp-test"});
  EXPECT_EQ(got["pcre:cpp@celeriac-.*"], me) << got;
  EXPECT_EQ(got["pcre:cpp@"], me) << got;
  EXPECT_EQ(got["pcre:celeriac-amqp"], Json::array()) << got;
  EXPECT_EQ(got["pcre:py@.*"], Json::array()) << got;
  EXPECT_EQ(got["glob:cpp@*"], me) << got;
  EXPECT_EQ(got["glob:cpp@"], Json::array()) << got;
}
