// bench_tls: what TLS costs the task queue. One redis-server (started here on
// free loopback ports) listens both in plaintext and with TLS; the same
// celeriac client + worker run over redis:// and then rediss://.
//
//   (a) N tasks with ignore_result, sent and drained      tasks/s
//   (b) sequential delay().get() round trips              p50 / p99 ms
//
// Target: TLS within 25 % of plaintext. Certificates come from the openssl
// CLI (tests/tq/support/tls_certs). Plain and TLS runs alternate for
// --rounds rounds (default 3); the table shows the median of each. A result
// that does not arrive within 5 s is counted as lost, not waited for.
//
// usage: bench_tls [--quick] [--rounds N]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "bench_common.hpp"
#include "celeriac/tq/app.hpp"
#include "celeriac/tq/worker.hpp"
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
  int drain = 20000, rtt = 1000;
};

struct Result {
  double drain_rate = 0, p50_ms = 0, p99_ms = 0;
  int lost = 0;  // results that never came (a backend bug, reported)
};

void progress(const std::string& line) {
  std::cout << "[bench_tls] " << line << std::endl;
}

// Waits until the worker finished `target` tasks, printing progress.
void wait_done(tq::Worker& w, std::uint64_t target, const std::string& what) {
  auto last = SteadyClock::now();
  for (;;) {
    auto c = w.counters();
    if (c.succeeded + c.failed >= target) return;
    if (SteadyClock::now() - last > 1s) {
      progress(what + ": " + std::to_string(c.succeeded + c.failed) + "/" + std::to_string(target));
      last = SteadyClock::now();
    }
    std::this_thread::sleep_for(200us);
  }
}

Result run(const std::string& url, const std::string& label, const Sizes& n) {
  tq::App app(url, url);
  tq::TaskOptions no_result;
  no_result.ignore_result = true;
  app.task(
      "tasks.noop", {}, [] {}, no_result);
  app.task("tasks.noop_result", {}, [] {});
  tq::WorkerOptions wo;
  wo.hostname = "bench@celeriac-tls";
  wo.concurrency = 2;
  wo.prefetch_multiplier = 64;
  wo.poll_interval = 100ms;
  tq::Worker worker(app, wo);
  worker.start();
  Result r;

  progress(label + " (a): " + std::to_string(n.drain) + " no-op tasks, ignore_result");
  tq::CallOptions o;
  o.ignore_result = true;
  auto t0 = SteadyClock::now();
  constexpr int kBatch = 500;
  for (int sent = 0; sent < n.drain; sent += kBatch) {
    std::vector<tq::TaskMessage> batch;
    for (int i = sent; i < std::min(n.drain, sent + kBatch); ++i)
      batch.push_back(app.build_message("tasks.noop", Json::array(), Json::object(), o));
    app.publish_many(batch);
  }
  wait_done(worker, static_cast<std::uint64_t>(n.drain), label + " (a)");
  r.drain_rate = n.drain / seconds_since(t0);

  progress(label + " (b): " + std::to_string(n.rtt) + " sequential delay().get()");
  try {
    app.send_task("tasks.noop_result").get(5s);  // warm up
  } catch (const celeriac::TimeoutError&) {
    ++r.lost;
  }
  std::vector<double> lat;
  for (int i = 0; i < n.rtt; ++i) {
    auto t1 = SteadyClock::now();
    try {
      app.send_task("tasks.noop_result").get(5s);
    } catch (const celeriac::TimeoutError&) {
      ++r.lost;
      progress(label + " (b): a result did not arrive within 5 s (lost: " + std::to_string(r.lost) +
               ")");
      continue;
    }
    lat.push_back(seconds_since(t1) * 1000);
  }
  std::sort(lat.begin(), lat.end());
  r.p50_ms = lat[lat.size() / 2];
  r.p99_ms = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  worker.stop();
  worker.wait(30s);
  return r;
}

// The median of each figure over the rounds; lost results summed.
Result median(std::vector<Result> rs) {
  auto mid = [&](auto field) {
    std::vector<double> v;
    for (auto& r : rs) v.push_back(r.*field);
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  Result m;
  m.drain_rate = mid(&Result::drain_rate);
  m.p50_ms = mid(&Result::p50_ms);
  m.p99_ms = mid(&Result::p99_ms);
  for (auto& r : rs) m.lost += r.lost;
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  Sizes n;
  int rounds = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      n = {4000, 200};
    } else if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else {
      std::cerr << "usage: bench_tls [--quick] [--rounds N]\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::warn);
  progress("making certificates with the openssl CLI");
  test::TlsCerts certs;
  test::RedisServer::Tls tls;
  tls.cert = certs.server().cert.string();
  tls.key = certs.server().key.string();
  tls.ca = certs.ca().string();
  tls.plaintext_too = true;
  test::RedisServer server({}, tls);
  progress("redis-server: " + server.plain_url() + " and " + server.url());

  std::vector<Result> plains, secures;
  for (int round = 1; round <= rounds; ++round) {
    progress("round " + std::to_string(round) + "/" + std::to_string(rounds));
    plains.push_back(run(server.plain_url(), "redis://", n));
    secures.push_back(run(server.url(), "rediss://", n));
  }
  Result plain = median(plains), secure = median(secures);

  auto pct = [](double tls_v, double plain_v) {
    return fmtd("%+.1f %%", (tls_v / plain_v - 1) * 100);
  };
  std::cout << "\n"
            << "| scenario | redis:// | rediss:// | TLS vs plain |\n"
            << "| --- | --- | --- | --- |\n"
            << "| (a) drain " << n.drain << " tasks, ignore_result (tasks/s) | "
            << fmtd("%.0f", plain.drain_rate) << " | " << fmtd("%.0f", secure.drain_rate) << " | "
            << pct(secure.drain_rate, plain.drain_rate) << " |\n"
            << "| (b) delay().get() p50 (ms) | " << fmtd("%.3f", plain.p50_ms) << " | "
            << fmtd("%.3f", secure.p50_ms) << " | " << pct(secure.p50_ms, plain.p50_ms) << " |\n"
            << "| (b) delay().get() p99 (ms) | " << fmtd("%.3f", plain.p99_ms) << " | "
            << fmtd("%.3f", secure.p99_ms) << " | " << pct(secure.p99_ms, plain.p99_ms) << " |\n";
  std::cout << "\nmedian of " << rounds << " rounds; results lost (never arrived): redis:// "
            << plain.lost << ", rediss:// " << secure.lost << "\n";
  bool ok = secure.drain_rate >= 0.75 * plain.drain_rate && secure.p50_ms <= 1.25 * plain.p50_ms;
  std::cout << "\ntarget (TLS within 25 % of plain): " << (ok ? "met" : "NOT met") << "\n";
  return 0;
}
