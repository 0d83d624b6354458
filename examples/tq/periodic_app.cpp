// Periodic tasks with beat: an app whose entries run every second and on a
// crontab. Run the scheduler next to a worker, on any broker:
//
//   ./periodic_app worker -B                 # worker with beat embedded
//   ./periodic_app beat &  ./periodic_app beat &   # two beats: one active, one standing by
//   ./periodic_app beat --list               # last/next run, total runs, active instance
//
// `./periodic_app --demo` runs a worker and beat in this process on
// memory:// until three heartbeats have run (the example's test).
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq.hpp"

namespace tq = celeriac::tq;
using namespace std::chrono_literals;

namespace {

// Registers the tasks and the schedule on `app`.
void define(tq::App& app) {
  // The slot beat sent it for arrives as a header; a task can use it as an idempotency key.
  app.task("tasks.heartbeat", {}, [](tq::Context& ctx) {
    return ctx.headers().value("celeriac_beat_slot", std::string("?"));
  });
  app.task("tasks.report", {"kind"}, [](const std::string& kind) { return "report: " + kind; });
  app.add_periodic_task(1s, tq::call("tasks.heartbeat"), "heartbeat");
  app.add_periodic_task(tq::crontab("0", "7", "mon-fri"),
                        tq::call("tasks.report", tq::Json::array({"daily"})), "weekday-report");
}

int demo() {
  tq::App app("memory://", "memory://");
  define(app);
  tq::WorkerOptions wo;
  wo.concurrency = 1;
  tq::Worker worker(app, wo);
  worker.start();
  tq::Beat beat(app, app.periodic_tasks());
  std::vector<std::string> ids;
  std::mutex mu;
  std::condition_variable cv;
  beat.on_sent = [&](const auto& sent) {
    std::lock_guard lock(mu);
    ids.push_back(tq::format_iso8601(sent.front().second));
    cv.notify_all();
  };
  beat.start();
  {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, 30s, [&] { return ids.size() >= 3; })) {
      std::fprintf(stderr, "beat sent only %zu heartbeats in 30 s\n", ids.size());
      return 1;
    }
  }
  beat.stop();
  // Wait (bounded) for the worker to have run them.
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (worker.counters().succeeded < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  worker.stop(false);
  worker.wait(10s);
  std::printf("3 heartbeats sent by beat, %llu run by the worker\n",
              static_cast<unsigned long long>(worker.counters().succeeded));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--demo") return demo();
  tq::App app;  // sqlite:///celeriac.db unless --broker/--backend say otherwise
  define(app);
  return app.main(argc, argv);  // worker [-B], beat [--list], call, result, ...
}
