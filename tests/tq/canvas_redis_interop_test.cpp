// Canvas interoperability with real Python Celery 5.2 on a real redis-server:
// workflows a Python client builds (chain, link, link_error, group, chord,
// nested ones, failures) run by a C++ worker exactly as Celery's worker runs
// them, and workflows built with tq::Signature run by a Python worker.
#include <gtest/gtest.h>

#include <stdexcept>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/redis/connection.hpp"
#include "celeriac/tq/signature.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace r = celeriac::tq::redis;
using celeriac::tq::test::CeleryWorker;
using celeriac::tq::test::RedisServer;
using tq::Json;
using namespace std::chrono_literals;

namespace {

void register_tasks(tq::App& app) {
  app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  app.task("tasks.mul", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x * y; });
  app.task("tasks.echo", {"value"}, [](Json v) { return v; });
  app.task("tasks.fail", {"message"}, [](std::string m) -> int { throw std::invalid_argument(m); });
  app.task("tasks.xsum", {"values"}, [](std::vector<std::int64_t> v) {
    std::int64_t s = 0;
    for (auto x : v) s += x;
    return s;
  });
}

struct CppWorker {
  tq::App app;
  tq::Worker worker;
  explicit CppWorker(const RedisServer& server, int concurrency = 2)
      : app(server.url(), server.url()), worker((register_tasks(app), app), options(concurrency)) {
    worker.start();
  }
  ~CppWorker() {
    worker.stop();
    worker.wait(20s);
  }
  static tq::WorkerOptions options(int concurrency) {
    tq::WorkerOptions o;
    o.hostname = "cpp@canvas-test";
    o.concurrency = concurrency;
    o.poll_interval = 200ms;
    return o;
  }
};

// Runs tests/tq/python/canvas_client.py with `scenarios`; {scenario: outcome}.
Json run_scenarios(const RedisServer& server, const std::vector<std::string>& scenarios) {
  std::vector<std::string> argv{"/usr/bin/python3",
                                (tq::test::python_dir() / "canvas_client.py").string()};
  argv.insert(argv.end(), scenarios.begin(), scenarios.end());
  auto res = tq::test::run_program(argv, 240s, tq::test::celery_env(server.url()));
  if (res.exit_code != 0)
    throw std::runtime_error("canvas_client.py failed (exit " + std::to_string(res.exit_code) +
                             "):\n" + res.output);
  auto end = res.output.find_last_not_of('\n');
  auto start = res.output.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  return tq::loads(res.output.substr(start, end - start + 1));
}

long long key_count(const RedisServer& server, const std::string& pattern) {
  auto c = r::Connection::connect(server.url());
  return static_cast<long long>(c.command({"KEYS", pattern}).size());
}

}  // namespace

TEST(CanvasInterop, PythonChainsLinksAndErrbacksRunOnTheCppWorker) {
  RedisServer server;
  CppWorker cpp(server);
  Json out =
      run_scenarios(server, {"chain", "chain_immutable", "link", "link_error", "chain_failure"});

  const Json& chain = out["chain"];
  EXPECT_EQ(chain["state"], "SUCCESS") << chain.dump();
  EXPECT_EQ(chain["result"], 17);
  EXPECT_EQ(chain["parents"], Json::array({16, 4}));  // AsyncResult.parent walks back
  EXPECT_EQ(chain["first_children"], Json::array({chain["second_id"]}));  // meta.children

  EXPECT_EQ(out["chain_immutable"]["result"], 20) << out["chain_immutable"].dump();

  const Json& link = out["link"];
  EXPECT_EQ(link["result"], 2) << link.dump();
  ASSERT_EQ(link["children"].size(), 1u) << link.dump();
  EXPECT_EQ(link["callback"]["result"], 20);

  const Json& le = out["link_error"];
  EXPECT_EQ(le["state"], "FAILURE") << le.dump();
  EXPECT_EQ(le["exc_type"], "ValueError");
  EXPECT_EQ(le["errback"]["result"], le["id"]) << "errback is called with (failed_task_id,)";

  const Json& cf = out["chain_failure"];  // the last step gets the same FAILURE, nobody hangs
  EXPECT_EQ(cf["state"], "FAILURE") << cf.dump();
  EXPECT_EQ(cf["exc_type"], "ValueError");
  EXPECT_EQ(cf["exc_args"], Json::array({"boom"}));
}

TEST(CanvasInterop, PythonGroupsAndChordsRunOnTheCppWorker) {
  RedisServer server;
  CppWorker cpp(server);
  Json out = run_scenarios(server, {"group", "chord", "chord_failure", "chord_empty"});
  EXPECT_EQ(out["group"]["result"], Json::array({0, 2, 4, 6, 8})) << out["group"].dump();
  EXPECT_EQ(out["chord"]["state"], "SUCCESS") << out["chord"].dump();
  EXPECT_EQ(out["chord"]["result"], 20);
  const Json& cf = out["chord_failure"];
  EXPECT_EQ(cf["state"], "FAILURE") << cf.dump();
  EXPECT_EQ(cf["exc_type"], "ChordError");
  ASSERT_EQ(cf["exc_args"].size(), 1u) << cf.dump();
  const std::string why = cf["exc_args"][0].get<std::string>();
  EXPECT_NE(why.find("raised ValueError('hdr')"), std::string::npos) << why;
  EXPECT_EQ(cf["errback"]["result"], cf["id"]) << "the body's errback gets (body_id,)";
  EXPECT_EQ(out["chord_empty"]["result"], 0) << out["chord_empty"].dump();
  // The chord keys are deleted once the body is sent.
  EXPECT_EQ(key_count(server, "celery-taskset-meta-*.j"), 0);
  EXPECT_EQ(key_count(server, "celery-taskset-meta-*.s"), 0);
}

TEST(CanvasInterop, PythonNestedWorkflowsRunOnTheCppWorker) {
  RedisServer server;
  CppWorker cpp(server, 4);
  Json out = run_scenarios(
      server, {"chain_group_chord", "chord_of_chains", "chord_in_chain", "group_of_chains"});
  EXPECT_EQ(out["chain_group_chord"]["result"], 7) << out["chain_group_chord"].dump();
  EXPECT_EQ(out["chord_of_chains"]["result"], 10) << out["chord_of_chains"].dump();
  EXPECT_EQ(out["chord_in_chain"]["result"], 70) << out["chord_in_chain"].dump();
  EXPECT_EQ(out["group_of_chains"]["result"], Json::array({0, 20, 40}))
      << out["group_of_chains"].dump();
}
