// bench_amqp: the celeriac task queue beside real Python Celery 5.2 on one
// private rabbitmq-server node that this program starts (with a TLS listener),
// results in a private redis-server for both sides.
//
//   drain:  N no-op messages published first (untimed), then a worker drains
//           them; timed from the first message leaving the queue to the last
//           task done. ignore_result and with results.         tasks/s
//   e2e:    N tasks sent by a client beside the worker and drained
//           (ignore_result), or sent and every result fetched.  tasks/s
//   rtt:    sequential delay().get() round trips               p50 / p99 ms
//   TLS:    celeriac's rtt and drain over amqps:// vs amqp://
//
// Celery runs the solo pool and the prefork pool (-c 2); celeriac its default
// threads pool (-c 2). Celery does fewer tasks (it is much slower); rates are
// comparable. Target (issue 13): >= 20x Celery on RabbitMQ; TLS within 25 %.
// A Celery drain ends when the queue has no ready message: the few messages
// its worker prefetched (4 per process) are not waited for.
//
// usage: bench_amqp [--quick] [--no-celery] [--publish-window N]
// (--publish-window 0: each send_task waits for its own publisher confirm,
// as before batched confirms; default: the broker's 256)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "bench_common.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
#include "support/celery_process.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/redis_server.hpp"
#include "support/tls_certs.hpp"

namespace tq = celeriac::tq;
namespace test = celeriac::tq::test;
using tq::Json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

using namespace celeriac::tq::bench;

namespace {

struct Sizes {
  int drain = 20000, drain_results = 10000, e2e = 10000, e2e_results = 5000, rtt = 1000;
  int py_drain = 2000, py_drain_results = 1000, py_e2e = 1000, py_e2e_results = 500, py_rtt = 200;
};

void progress(const std::string& line) {
  std::cout << "[bench_amqp] " << line << std::endl;
}

// Publishes `n` no-ops of `task` into "celery" (untimed); returns the last id.
std::string preload(tq::App& app, const std::string& task, int n, bool ignore_result) {
  tq::CallOptions o;
  o.ignore_result = ignore_result;
  std::string last;
  constexpr int kBatch = 1000;
  for (int sent = 0; sent < n; sent += kBatch) {
    std::vector<tq::TaskMessage> batch;
    for (int i = sent; i < std::min(n, sent + kBatch); ++i)
      batch.push_back(app.build_message(task, Json::array(), Json::object(), o));
    last = batch.back().id;
    app.publish_many(batch);
  }
  return last;
}

// Drains `n` preloaded tasks with the worker `start()` returns (kept alive
// until done); `done()` says when all are. Returns tasks/s.
template <class Start, class Done>
double drain_rate(tq::App& app, const std::string& task, int n, bool ignore_result, Start start,
                  Done done, const std::string& what) {
  auto& broker = app.broker();
  broker.purge("celery");
  std::string last = preload(app, task, n, ignore_result);
  progress(what + ": " + std::to_string(n) + " messages published");
  auto keep = start();
  while (broker.queue_length("celery") >= static_cast<std::size_t>(n))
    std::this_thread::sleep_for(200us);
  auto t0 = SteadyClock::now();
  auto last_print = t0;
  while (!done(last)) {
    if (SteadyClock::now() - last_print > 1s) {
      progress(what + ": " + std::to_string(broker.queue_length("celery")) + " ready in the queue");
      last_print = SteadyClock::now();
    }
    std::this_thread::sleep_for(1ms);
  }
  double rate = n / seconds_since(t0);
  progress(what + ": " + fmtd("%.0f tasks/s", rate));
  return rate;
}

void wait_counted(tq::Worker& w, std::uint64_t target) {
  while (w.counters().succeeded + w.counters().failed < target) std::this_thread::sleep_for(200us);
}

double e2e_ignore(tq::App& app, tq::Worker& w, int n) {
  std::uint64_t base = w.counters().succeeded;
  auto t0 = SteadyClock::now();
  preload(app, "tasks.noop", n, true);
  wait_counted(w, base + static_cast<std::uint64_t>(n));
  return n / seconds_since(t0);
}

double e2e_results(tq::App& app, int n) {
  auto t0 = SteadyClock::now();
  std::vector<tq::AsyncResult<Json>> results;
  for (int i = 0; i < n; ++i) results.push_back(app.send_task("tasks.noop_result"));
  for (auto& r : results) r.get(120s);
  return n / seconds_since(t0);
}

std::pair<double, double> rtt(tq::App& app, int n) {
  app.send_task("tasks.noop_result").get(30s);
  std::vector<double> lat;
  for (int i = 0; i < n; ++i) {
    auto t0 = SteadyClock::now();
    app.send_task("tasks.noop_result").get(30s);
    lat.push_back(seconds_since(t0) * 1000);
  }
  std::sort(lat.begin(), lat.end());
  return {lat[lat.size() / 2], lat[std::min(lat.size() - 1, lat.size() * 99 / 100)]};
}

Json celery_client(const std::string& url, const std::string& mode, int n) {
  auto script = std::string(CELERIAC_SOURCE_DIR) + "/bench/tq/celery_amqp_bench.py";
  auto r = test::run_program({"/usr/bin/python3", script, mode, std::to_string(n)}, 600s,
                             test::celery_env(url));
  if (r.exit_code != 0)
    throw std::runtime_error("celery_amqp_bench.py " + mode + " failed:\n" + r.output);
  auto end = r.output.find_last_not_of('\n');
  auto start = r.output.rfind('\n', end);
  return Json::parse(r.output.substr(start == std::string::npos ? 0 : start + 1));
}

struct Figures {
  double drain = 0, drain_results = 0, e2e = 0, e2e_results = 0, p50 = 0, p99 = 0;
};

// Every celeriac scenario on `url` (amqp:// or amqps://).
Figures celeriac_side(const std::string& url, const std::string& results, const Sizes& s,
                      const std::string& label) {
  Figures f;
  tq::App app(url, results);
  register_noops(app);
  std::shared_ptr<tq::Worker> w;
  auto start = [&] {
    w = std::make_shared<tq::Worker>(app, worker_options());
    w->start();
    return w;
  };
  auto stop = [&] {
    w->stop();
    w->wait(60s);
    w.reset();
  };
  auto counted = [&](int n) {
    return [&w, n](const std::string&) {
      auto c = w->counters();
      return c.succeeded + c.failed >= static_cast<std::uint64_t>(n);
    };
  };
  f.drain = drain_rate(app, "tasks.noop", s.drain, true, start, counted(s.drain),
                       label + " drain, ignore_result");
  stop();
  f.drain_results = drain_rate(app, "tasks.noop_result", s.drain_results, false, start,
                               counted(s.drain_results), label + " drain, with results");
  stop();
  start();
  f.e2e = e2e_ignore(app, *w, s.e2e);
  progress(label + " end to end, ignore_result: " + fmtd("%.0f tasks/s", f.e2e));
  f.e2e_results = e2e_results(app, s.e2e_results);
  progress(label + " end to end, with results: " + fmtd("%.0f tasks/s", f.e2e_results));
  std::tie(f.p50, f.p99) = rtt(app, s.rtt);
  progress(label + " delay().get(): p50 " + fmtd("%.3f", f.p50) + " ms, p99 " +
           fmtd("%.3f", f.p99) + " ms");
  stop();
  return f;
}

// Every scenario with a Python Celery worker of `pool` (-c `concurrency`).
Figures celery_side(const std::string& url, const std::string& results, const Sizes& s,
                    const std::string& pool, int concurrency) {
  Figures f;
  std::string label = "Celery " + pool;
  tq::App app(url, results);  // publishes the preloaded messages, reads results
  test::CeleryWorker::Options o;
  o.pool = pool;
  o.concurrency = concurrency;
  o.hostname = "bench-py-" + pool + "@celeriac";
  std::shared_ptr<test::CeleryWorker> py;
  auto start = [&] {
    py = std::make_shared<test::CeleryWorker>(url, o);
    return py;
  };
  auto empty = [&](const std::string&) { return app.broker().queue_length("celery") == 0; };
  auto with_result = [&](const std::string& last) {
    return empty(last) && app.async_result<Json>(last).ready();
  };
  f.drain = drain_rate(app, "tasks.noop", s.py_drain, true, start, empty,
                       label + " drain, ignore_result");
  py.reset();
  f.drain_results = drain_rate(app, "tasks.noop_result", s.py_drain_results, false, start,
                               with_result, label + " drain, with results");
  f.e2e = celery_client(url, "ignore", s.py_e2e)["rate"].get<double>();
  progress(label + " end to end, ignore_result: " + fmtd("%.0f tasks/s", f.e2e));
  f.e2e_results = celery_client(url, "results", s.py_e2e_results)["rate"].get<double>();
  progress(label + " end to end, with results: " + fmtd("%.0f tasks/s", f.e2e_results));
  auto r = celery_client(url, "rtt", s.py_rtt);
  f.p50 = r["p50_ms"].get<double>();
  f.p99 = r["p99_ms"].get<double>();
  progress(label + " delay().get(): p50 " + fmtd("%.3f", f.p50) + " ms, p99 " +
           fmtd("%.3f", f.p99) + " ms");
  py.reset();
  return f;
}

void row(const char* what, double ours, const std::vector<double>& theirs, bool higher_better,
         const char* unit) {
  std::printf("| %-30s | %10.1f %-7s |", what, ours, unit);
  for (double t : theirs) {
    double ratio = t > 0 ? (higher_better ? ours / t : t / ours) : 0;
    std::printf(" %10.1f (%5.1fx) |", t, ratio);
  }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, celery = true;
  std::string window;  // "" = the broker's default
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick"))
      quick = true;
    else if (!std::strcmp(argv[i], "--no-celery"))
      celery = false;
    else if (!std::strcmp(argv[i], "--publish-window") && i + 1 < argc)
      window = argv[++i];
    else {
      std::cerr << "usage: bench_amqp [--quick] [--no-celery] [--publish-window N]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  Sizes s;
  if (quick) s = Sizes{5000, 2000, 2000, 1000, 300, 500, 300, 300, 200, 100};
  progress("starting rabbitmq-server (private node, with a TLS listener) and redis-server");
  test::TlsCerts certs;
  test::RabbitMqServer rabbit(&certs);
  test::RedisServer redis;
  ::setenv("CELERIAC_TEST_RESULT_BACKEND", redis.url().c_str(), 1);
  std::string plain = rabbit.url(window.empty() ? "" : "?publish_window=" + window);
  std::string tls = rabbit.tls_url("?ssl_ca_certs=" + certs.ca().string() +
                                   (window.empty() ? "" : "&publish_window=" + window));

  Figures ours = celeriac_side(plain, redis.url(), s, "celeriac amqp://");
  Figures ours_tls = celeriac_side(tls, redis.url(), s, "celeriac amqps://");
  std::vector<Figures> theirs;
  std::vector<std::string> names;
  if (celery) {
    theirs.push_back(celery_side(rabbit.pyamqp_url(), redis.url(), s, "solo", 1));
    names.push_back("Celery solo");
    theirs.push_back(celery_side(rabbit.pyamqp_url(), redis.url(), s, "prefork", 2));
    names.push_back("Celery prefork -c 2");
  }
  auto col = [&](double Figures::*m) {
    std::vector<double> v;
    for (auto& f : theirs) v.push_back(f.*m);
    return v;
  };
  std::printf("\n| %-30s | %-18s |", "RabbitMQ (results in Redis)", "celeriac -c 2");
  for (auto& n : names) std::printf(" %-19s |", n.c_str());
  std::printf("\n");
  row("drain, ignore_result", ours.drain, col(&Figures::drain), true, "tasks/s");
  row("drain, with results", ours.drain_results, col(&Figures::drain_results), true, "tasks/s");
  row("end to end, ignore_result", ours.e2e, col(&Figures::e2e), true, "tasks/s");
  row("end to end, with results", ours.e2e_results, col(&Figures::e2e_results), true, "tasks/s");
  row("delay().get() p50", ours.p50, col(&Figures::p50), false, "ms");
  row("delay().get() p99", ours.p99, col(&Figures::p99), false, "ms");
  std::printf(
      "(ratio: celeriac / Celery for rates, Celery / celeriac for latencies; target >= 20x)\n");
  auto pct = [](double tls_v, double plain_v) { return 100.0 * (tls_v - plain_v) / plain_v; };
  std::printf("\nTLS (celeriac, amqps:// vs amqp://; target within 25 %%)\n");
  std::printf("  drain ignore_result  %8.0f vs %8.0f tasks/s  (%+.0f %%)\n", ours_tls.drain,
              ours.drain, pct(ours_tls.drain, ours.drain));
  std::printf("  drain with results   %8.0f vs %8.0f tasks/s  (%+.0f %%)\n", ours_tls.drain_results,
              ours.drain_results, pct(ours_tls.drain_results, ours.drain_results));
  std::printf("  e2e ignore_result    %8.0f vs %8.0f tasks/s  (%+.0f %%)\n", ours_tls.e2e, ours.e2e,
              pct(ours_tls.e2e, ours.e2e));
  std::printf("  e2e with results     %8.0f vs %8.0f tasks/s  (%+.0f %%)\n", ours_tls.e2e_results,
              ours.e2e_results, pct(ours_tls.e2e_results, ours.e2e_results));
  std::printf("  delay().get() p50    %8.3f vs %8.3f ms       (%+.0f %%)\n", ours_tls.p50, ours.p50,
              pct(ours_tls.p50, ours.p50));
  std::printf("  delay().get() p99    %8.3f vs %8.3f ms       (%+.0f %%)\n", ours_tls.p99, ours.p99,
              pct(ours_tls.p99, ours.p99));
  ::unsetenv("CELERIAC_TEST_RESULT_BACKEND");
  return 0;
}
