// Task routes (App::route): exact names, globs, router functions, their
// order, and what wins over them; on the memory:// transport.
#include <gtest/gtest.h>

#include <stdexcept>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"

using namespace celeriac::tq;
using namespace std::chrono_literals;

namespace {

std::string queue_of(App& app, const std::string& name, CallOptions o = {}) {
  return app.build_message(name, Json::array({1}), Json::object(), o).queue;
}

class TqRoutes : public ::testing::Test {
 protected:
  App app{"memory://routes-" + make_uuid(), ""};
};

}  // namespace

TEST_F(TqRoutes, ExactNameAndGlobFirstMatchWins) {
  app.route("tasks.io.fetch", "fetchq");
  app.route("tasks.io.*", "io");
  app.route("tasks.*", "general");
  EXPECT_EQ(queue_of(app, "tasks.io.fetch"), "fetchq");
  EXPECT_EQ(queue_of(app, "tasks.io.store"), "io");
  EXPECT_EQ(queue_of(app, "tasks.cpu.add"), "general");
  EXPECT_EQ(queue_of(app, "other.add"), "celery");  // no route: the default queue
}

TEST_F(TqRoutes, GlobSyntax) {
  EXPECT_TRUE(glob_match("tasks.?o", "tasks.io"));
  EXPECT_TRUE(glob_match("tasks.[ab]*", "tasks.beta"));
  EXPECT_FALSE(glob_match("tasks.[ab]*", "tasks.cpu"));
  EXPECT_TRUE(glob_match("*", "x.y.z"));
  EXPECT_FALSE(glob_match("tasks.io.*", "tasks.iox"));
}

TEST_F(TqRoutes, RouterFunctionSeesArgumentsAndFallsThrough) {
  app.route(
      [](const std::string& name, const Json& args, const Json&) -> std::optional<std::string> {
        if (name == "tasks.big" && args.at(0).get<int>() > 100) return "bulk";
        return std::nullopt;
      });
  app.route("tasks.*", "general");
  EXPECT_EQ(app.build_message("tasks.big", Json::array({500}), Json::object(), {}).queue, "bulk");
  EXPECT_EQ(app.build_message("tasks.big", Json::array({5}), Json::object(), {}).queue, "general");
}

TEST_F(TqRoutes, ExplicitQueueAndTaskQueueWinOverRoutes) {
  app.route("tasks.*", "routed");
  CallOptions explicit_queue;
  explicit_queue.queue = "explicit";
  EXPECT_EQ(queue_of(app, "tasks.a", explicit_queue), "explicit");
  TaskOptions to;
  to.queue = "own";
  auto t = app.task(
      "tasks.own", {"x"}, [](int x) { return x; }, to);
  auto r = t.delay(1);
  EXPECT_EQ(app.broker().queue_length("own"), 1u);
  EXPECT_EQ(app.broker().queue_length("routed"), 0u);
}

TEST_F(TqRoutes, AppliesToDelaySendTaskAndSendMany) {
  app.route("tasks.*", "routed");
  auto t = app.task("tasks.add", {"x"}, [](int x) { return x; });
  (void)t.delay(1);
  (void)app.send_task("tasks.py_only", Json::array({1}));
  (void)app.send_many("tasks.add", {Json::array({1}), Json::array({2})});
  EXPECT_EQ(app.broker().queue_length("routed"), 4u);
  EXPECT_EQ(app.broker().queue_length("celery"), 0u);
}

TEST_F(TqRoutes, RouterThatThrowsFailsTheCallAndSendsNothing) {
  app.route([](const std::string&, const Json&, const Json&) -> std::optional<std::string> {
    throw std::runtime_error("no route for tenant 7");
  });
  auto t = app.task("tasks.add", {"x"}, [](int x) { return x; });
  try {
    (void)t.delay(1);
    FAIL() << "delay() must fail when the router throws";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "no route for tenant 7");
  }
  EXPECT_THROW((void)app.send_task("tasks.add", Json::array({1})), std::runtime_error);
  EXPECT_EQ(app.broker().queue_length("celery"), 0u);
}

TEST_F(TqRoutes, BadRoutesAreConfigErrors) {
  EXPECT_THROW(app.route("", "q"), ConfigError);
  EXPECT_THROW(app.route("tasks.*", ""), ConfigError);
  EXPECT_THROW(app.route(RouterFn{}), ConfigError);
  app.route([](const std::string&, const Json&, const Json&) -> std::optional<std::string> {
    return "";
  });
  try {
    (void)queue_of(app, "tasks.x");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("tasks.x"), std::string::npos) << e.what();
  }
}

TEST_F(TqRoutes, UnmatchedGlobsAreReported) {
  app.task("tasks.io.read", {}, [] { return 1; });
  app.route("tasks.io.*", "io");
  app.route("tasks.nothing.*", "x");
  app.route("tasks.exact", "y");  // exact names may name tasks of other programs
  EXPECT_EQ(app.router().unmatched_globs(app.task_names()),
            std::vector<std::string>{"tasks.nothing.*"});
}

TEST_F(TqRoutes, WorkerConsumingTheRoutedQueueRunsTheTask) {
  app.route("tasks.io.*", "io");
  auto t = app.task("tasks.io.double", {"x"}, [](int x) { return 2 * x; });
  WorkerOptions o;
  o.queues = {"io"};
  o.concurrency = 1;
  o.poll_interval = 20ms;
  Worker w(app, o);
  w.start();
  EXPECT_EQ(t.delay(21).get(10s), 42);
  w.stop();
  EXPECT_TRUE(w.wait(10s));
}
