// The dashboard's pages in a real browser: a headless Chromium (Debian's
// `chromium`) loads each page of a dashboard watching a C++ and a Python
// worker, and the test asserts on the rendered DOM what a person would see.
// Screenshots are kept under the build directory (monitor-artifacts/).
#include <gtest/gtest.h>

#include <filesystem>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/dashboard.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/worker.hpp"
#include "monitor_test_util.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
using celeriac::tq::test::eventually;
using celeriac::tq::test::get_json;
using namespace std::chrono_literals;

namespace {

constexpr const char* kCpp = "cpp@mon-browser";
constexpr const char* kPy = "py@mon-browser";

class Browser {
 public:
  Browser() : profile_("celeriac-chromium") {}
  static bool available() { return std::filesystem::exists("/usr/bin/chromium"); }
  /// The DOM once the page's scripts and requests are done (virtual time).
  std::string dom(const std::string& url) { return run({"--dump-dom", url}).output; }
  /// Saves a screenshot of `url` to `file`.
  bool screenshot(const std::string& url, const std::filesystem::path& file) {
    std::filesystem::create_directories(file.parent_path());
    run({"--window-size=1280,900", "--screenshot=" + file.string(), url});
    return std::filesystem::exists(file) && std::filesystem::file_size(file) > 0;
  }

 private:
  tq::test::RunResult run(std::vector<std::string> extra) {
    std::vector<std::string> argv = {"/usr/bin/chromium",
                                     "--headless",
                                     "--no-sandbox",
                                     "--disable-gpu",
                                     "--disable-dev-shm-usage",
                                     "--hide-scrollbars",
                                     "--no-first-run",
                                     "--virtual-time-budget=10000",
                                     "--user-data-dir=" + profile_.path().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return tq::test::run_program(argv, 120s);
  }
  tq::test::TempDir profile_;
};

int chart_points(const std::string& dom) {
  auto p = dom.find("data-points=\"");
  return p == std::string::npos ? -1 : std::stoi(dom.substr(p + 13));
}

}  // namespace

TEST(MonitorBrowser, PagesShowWorkersTasksTracebacksAndTheChart) {
  if (!Browser::available()) GTEST_SKIP() << "chromium is not installed (scripts/packages.txt)";
  tq::test::RedisServer redis;
  tq::App app(redis.url(), redis.url());
  app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  tq::test::TempDir dir("celeriac-monitor-browser");
  tq::DashboardOptions d;
  d.port = 0;
  d.history_path = (dir.path() / "history.db").string();
  tq::Dashboard dash(app, d);
  dash.start();
  std::string base = "http://127.0.0.1:" + std::to_string(dash.port()) + "/?nolive";
  std::filesystem::path artifacts = CELERIAC_MONITOR_ARTIFACTS;

  tq::WorkerOptions o;
  o.hostname = kCpp;
  o.concurrency = 2;
  o.task_events = true;
  tq::Worker worker(app, o);
  worker.start();
  tq::test::CeleryWorker::Options po;
  po.hostname = kPy;
  po.events = true;
  po.heartbeat = true;
  po.queues = {"py"};
  tq::test::CeleryWorker py(redis.url(), po);
  ASSERT_TRUE(eventually([&] {
    auto s = get_json(dash.port(), "/api/workers?status=true");
    return s.value(kCpp, false) && s.value(kPy, false);
  }));

  Browser browser;
  // the chart has nothing yet: no task has run
  EXPECT_EQ(chart_points(browser.dom(base + "#/overview")), 0);

  for (int i = 0; i < 5; ++i) app.send_task("tasks.add", tq::Json::array({i, i})).get(60s);
  tq::CallOptions to_py;
  to_py.queue = "py";
  auto failed = app.send_task("tasks.fail", tq::Json::array({"shown in the browser"}),
                              tq::Json::object(), to_py);
  EXPECT_THROW(failed.get(60s), tq::TaskError);
  ASSERT_TRUE(eventually([&] {
    auto t = get_json(dash.port(), "/api/task/info/" + failed.id());
    return t.is_object() && t.value("state", "") == "FAILURE";
  }));

  std::string overview = browser.dom(base + "#/overview");
  EXPECT_NE(overview.find(std::string(kCpp) + "</td>"), std::string::npos) << overview;
  EXPECT_NE(overview.find(std::string(kPy) + "</td>"), std::string::npos) << overview;
  EXPECT_NE(overview.find("<td>Python</td>"), std::string::npos);
  EXPECT_NE(overview.find("<td>C++</td>"), std::string::npos);
  EXPECT_GT(chart_points(overview), 0) << overview;  // the chart draws the tasks that arrived

  std::string tasks = browser.dom(base + "#/tasks?taskname=tasks.add");
  EXPECT_NE(tasks.find("state-SUCCESS"), std::string::npos) << tasks;
  EXPECT_EQ(tasks.find("tasks.fail</td>"), std::string::npos) << "the filter kept only tasks.add";

  std::string detail = browser.dom(base + "#/task/" + failed.id());
  EXPECT_NE(detail.find("id=\"traceback\""), std::string::npos) << detail;
  EXPECT_NE(detail.find("shown in the browser"), std::string::npos) << detail;
  EXPECT_NE(detail.find("Traceback (most recent call last)"), std::string::npos) << detail;

  std::string workers = browser.dom(base + "#/workers");
  EXPECT_NE(workers.find("data-worker=\"" + std::string(kPy) + "\""), std::string::npos) << workers;
  EXPECT_NE(workers.find("tasks.add"), std::string::npos);  // registered tasks listed

  std::string queues = browser.dom(base + "#/queues");
  EXPECT_NE(queues.find("<td>celery</td>"), std::string::npos) << queues;
  std::string dead = browser.dom(base + "#/dead");
  EXPECT_NE(dead.find("id=\"dead\""), std::string::npos) << dead;

  for (const char* page : {"overview", "tasks", "workers", "queues", "dead"})
    EXPECT_TRUE(browser.screenshot(base + "#/" + page,
                                   artifacts / (std::string("dashboard-") + page + ".png")))
        << page;
  EXPECT_TRUE(browser.screenshot(base + "#/task/" + failed.id(), artifacts / "dashboard-task.png"));
  py.stop();
  worker.stop();
  worker.wait(30s);
}
