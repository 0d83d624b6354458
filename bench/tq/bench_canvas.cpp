// bench_canvas: a chord of 1,000 no-op header tasks + body, and a chain of
// 1,000 steps, from apply_async to the final result — celeriac (C++ client,
// C++ worker) beside Celery 5.2 (Python client, Python worker, prefork -c 2)
// on one redis-server this program starts. Prints the times and ratios.
//
//   build/release/bench/tq/bench_canvas [N]     (N = 1000 by default)
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "celeriac/tq.hpp"
#include "celeriac/tq/signature.hpp"
#include "support/celery_process.hpp"
#include "support/redis_server.hpp"

namespace tq = celeriac::tq;
namespace test = celeriac::tq::test;
using tq::Json;
using namespace std::chrono_literals;

using namespace celeriac::tq::bench;

namespace {

struct Times {
  double chord = 0, chain = 0;
};

Times run_celeriac(const std::string& url, int n) {
  tq::App app(url, url);
  auto add =
      app.task("tasks.add", {"x", "y"}, [](std::int64_t x, std::int64_t y) { return x + y; });
  auto xsum = app.task("tasks.xsum", {"values"}, [](std::vector<std::int64_t> v) {
    std::int64_t s = 0;
    for (auto x : v) s += x;
    return s;
  });
  tq::WorkerOptions o;
  o.hostname = "cpp@bench-canvas";
  o.concurrency = 4;
  tq::Worker worker(app, o);
  worker.start();
  add.s(1, 1).apply_async().get(30s);  // warm up
  Times t;
  std::vector<tq::Signature> header;
  for (int i = 0; i < n; ++i) header.push_back(add.s(i, 0));
  auto t0 = std::chrono::steady_clock::now();
  Json v = tq::chord(header, xsum.s()).apply_async().get(600s);
  t.chord = seconds_since(t0);
  if (v != static_cast<std::int64_t>(n) * (n - 1) / 2) std::fprintf(stderr, "bad chord result\n");
  std::vector<tq::Signature> steps{add.s(0, 0)};
  for (int i = 1; i < n; ++i) steps.push_back(add.s(1));
  t0 = std::chrono::steady_clock::now();
  v = tq::chain(steps).apply_async().get(600s);
  t.chain = seconds_since(t0);
  if (v != n - 1) std::fprintf(stderr, "bad chain result\n");
  worker.stop();
  worker.wait(20s);
  return t;
}

double run_celery(const std::string& url, const std::string& mode, int n) {
  auto r = test::run_program(
      {"/usr/bin/python3",
       (std::filesystem::path(CELERIAC_SOURCE_DIR) / "bench" / "tq" / "celery_canvas_bench.py")
           .string(),
       mode, std::to_string(n)},
      900s, test::celery_env(url));
  auto end = r.output.find_last_not_of('\n');
  auto start = r.output.rfind('\n', end);
  start = start == std::string::npos ? 0 : start + 1;
  Json j = tq::loads(r.output.substr(start, end - start + 1));
  if (!j.value("ok", false)) std::fprintf(stderr, "Celery %s gave a wrong result\n", mode.c_str());
  return j.at("seconds").get<double>();
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  test::RedisServer server;
  const std::string url = server.url();
  std::printf("bench_canvas: N = %d, redis-server %s\n", n, url.c_str());
  std::printf("celeriac (C++ client, threads pool -c 4)...\n");
  std::fflush(stdout);
  Times cpp = run_celeriac(url, n);
  std::printf("Celery 5.2 (Python client, prefork -c 2)...\n");
  std::fflush(stdout);
  Times py;
  {
    test::CeleryWorker::Options po;
    po.pool = "prefork";
    po.concurrency = 2;
    test::CeleryWorker worker(url, po);
    py.chord = run_celery(url, "chord", n);
    std::printf("  chord done (%.2f s)\n", py.chord);
    std::fflush(stdout);
    py.chain = run_celery(url, "chain", n);
  }
  std::printf("\n%-44s %12s %12s %8s\n", "measurement (apply_async -> result)", "celeriac",
              "Celery 5.2", "ratio");
  std::printf("%-44s %10.3f s %10.3f s %7.1fx\n",
              ("chord of " + std::to_string(n) + " + body").c_str(), cpp.chord, py.chord,
              py.chord / cpp.chord);
  std::printf("%-44s %10.3f s %10.3f s %7.1fx\n",
              ("chain of " + std::to_string(n) + " steps").c_str(), cpp.chain, py.chain,
              py.chain / cpp.chain);
  std::printf("(ratio: how many times faster celeriac is)\n");
  return 0;
}
