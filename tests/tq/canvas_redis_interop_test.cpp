// Canvas interoperability with real Python Celery 5.2 on a real redis-server:
// workflows a Python client builds (chain, link, link_error, group, chord,
// nested ones, failures) run by a C++ worker exactly as Celery's worker runs
// them, and workflows built with tq::Signature run by a Python worker.
#include <gtest/gtest.h>

#include <stdexcept>
#include <thread>

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
  app.task("tasks.whoami", {}, [] { return std::string("cpp"); });
  app.task("tasks.xsum", {"values"}, [](std::vector<std::int64_t> v) {
    std::int64_t s = 0;
    for (auto x : v) s += x;
    return s;
  });
}

struct CppWorker {
  tq::App app;
  tq::Worker worker;
  explicit CppWorker(const RedisServer& server, int concurrency = 2,
                     std::vector<std::string> queues = {})
      : app(server.url(), server.url()),
        worker((register_tasks(app), app), options(concurrency, std::move(queues))) {
    worker.start();
  }
  ~CppWorker() {
    worker.stop();
    worker.wait(20s);
  }
  static tq::WorkerOptions options(int concurrency, std::vector<std::string> queues) {
    tq::WorkerOptions o;
    o.queues = std::move(queues);
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

// Waits (bounded) until no key matches `pattern`: the chord keys are deleted
// just after the body is published, so possibly after the body finished.
bool keys_gone(const RedisServer& server, const std::string& pattern) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (key_count(server, pattern) != 0) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
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
  EXPECT_TRUE(keys_gone(server, "celery-taskset-meta-*"));
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

TEST(CanvasInterop, PythonMapStarmapAndChunksRunOnTheCppWorker) {
  RedisServer server;
  CppWorker cpp(server);
  Json out = run_scenarios(server, {"map", "starmap", "chunks"});
  EXPECT_EQ(out["map"]["result"], Json::parse(R"([1, "two", [3]])")) << out["map"].dump();
  EXPECT_EQ(out["starmap"]["result"], Json::array({3, 7})) << out["starmap"].dump();
  EXPECT_EQ(out["chunks"]["result"], Json::parse("[[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]"))
      << out["chunks"].dump();
}

TEST(CanvasInterop, CppWorkflowsRunOnAPythonWorker) {
  RedisServer server;
  CeleryWorker py(server.url());
  tq::App app(server.url(), server.url());
  auto s = [&](const std::string& name, Json args = Json::array()) {
    return app.signature(name, std::move(args));
  };
  const auto wait = 60s;
  auto chained = (s("tasks.add", {2, 2}) | s("tasks.mul", {4}) | s("tasks.add", {1})).apply_async();
  EXPECT_EQ(chained.get(wait), 17);
  auto grouped = tq::group({s("tasks.add", {1, 1}), s("tasks.add", {2, 2})}).apply_async();
  EXPECT_EQ(grouped.get(wait), Json::array({2, 4}));
  std::vector<tq::Signature> header;
  for (int i = 0; i < 5; ++i) header.push_back(s("tasks.add", {i, i}));
  EXPECT_EQ(tq::chord(header, s("tasks.xsum")).apply_async().get(wait), 20);
  EXPECT_EQ((s("tasks.add", {1, 1}) |
             tq::chord({s("tasks.add", {1}), s("tasks.add", {2})}, s("tasks.xsum")) |
             s("tasks.mul", {10}))
                .apply_async()
                .get(wait),
            70);
  tq::Signature cb = s("tasks.mul", {10});
  std::string cb_id = cb.freeze();
  EXPECT_EQ(s("tasks.add", {1, 1}).link(cb).apply_async().get(wait), 2);
  EXPECT_EQ(app.async_result(cb_id).get(wait), 20);
  tq::Signature eb = s("tasks.echo");
  std::string eb_id = eb.freeze();
  auto failed = s("tasks.fail", {"x"}).link_error(eb).apply_async();
  EXPECT_THROW(failed.get(wait), tq::TaskError);
  EXPECT_EQ(app.async_result(eb_id).get(wait), failed.id());
  EXPECT_EQ(tq::map(s("tasks.echo"), Json::array({1, 2})).apply_async().get(wait),
            Json::array({1, 2}));
  EXPECT_EQ(tq::chunks(s("tasks.add"), Json::parse("[[1, 1], [2, 2], [3, 3]]"), 2)
                .apply_async()
                .get(wait),
            Json::parse("[[2, 4], [6]]"));
  auto bad_chord =
      tq::chord({s("tasks.add", {1, 1}), s("tasks.fail", {"hdr"})}, s("tasks.xsum")).apply_async();
  try {
    bad_chord.get(wait);
    ADD_FAILURE() << "chord body ran";
  } catch (const tq::TaskError& e) {
    EXPECT_EQ(e.exc_type(), "ChordError");
  }
}

// One chord, its header parts routed half to a Python worker's queue and
// half to a C++ worker's: whichever finishes last publishes the body, once.
TEST(CanvasInterop, ChordSplitBetweenPythonAndCppWorkersCompletesOnce) {
  RedisServer server;
  CeleryWorker::Options po;
  po.queues = {"py"};
  CeleryWorker py(server.url(), po);
  CppWorker cpp(server, 2, {"cpp", "celery"});
  std::vector<tq::Signature> header;
  for (int i = 0; i < 10; ++i)
    header.push_back(cpp.app.signature("tasks.whoami").set_option("queue", i % 2 ? "py" : "cpp"));
  auto r = tq::chord(header, cpp.app.signature("tasks.echo")).apply_async();
  Json all = r.get(60s);
  ASSERT_EQ(all.size(), 10u) << all.dump();
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i % 2 ? "py" : "cpp") << i;
  EXPECT_TRUE(keys_gone(server, "celery-taskset-meta-*"));
}
