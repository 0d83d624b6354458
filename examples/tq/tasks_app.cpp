// The README's taste of the task queue: an app binary with two tasks (a
// plain one and an I/O-bound coroutine) that gets Celery's verbs from one
// call. Try it on the embedded SQLite broker:
//
//   ./tasks_app worker -P async &          # coroutine tasks on one event loop
//   ./tasks_app call tasks.add '[2, 3]'    # prints 5
//   ./tasks_app call tasks.fetch '[100]'   # prints 100 after 0.1 s
//
// or on Redis, shared with Python Celery workers and clients:
//
//   ./tasks_app --broker redis://127.0.0.1:6379/0 worker
#include <chrono>

#include "celeriac/aio.hpp"
#include "celeriac/tq.hpp"

namespace tq = celeriac::tq;
namespace aio = celeriac::aio;

int main(int argc, char** argv) {
  tq::App app;  // sqlite:///celeriac.db unless --broker/--backend say otherwise
  app.task("tasks.add", {"x", "y"}, [](int x, int y) { return x + y; });
  app.task("tasks.fetch", {"ms"}, [](int ms) -> aio::Task<int> {
    co_await aio::sleep(std::chrono::milliseconds(ms));  // stands for a network call
    co_return ms;
  });
  return app.main(argc, argv);  // worker, call, result, purge, inspect, status; --help on each
}
