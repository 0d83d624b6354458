// The C++ rows of the guide: the same three workloads through every tool of
// celeriac. Each row runs in a process of its own (started by the guide with
// --row NAME), so its peak memory and CPU time are its own.
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "celeriac/aio.hpp"
#include "celeriac/exec.hpp"
#include "celeriac/mp.hpp"
#include "celeriac/tq.hpp"
#include "workloads.hpp"

namespace guide {
namespace {

namespace aio = celeriac::aio;
namespace exec = celeriac::exec;
namespace mp = celeriac::mp;
namespace tq = celeriac::tq;
using Clock = std::chrono::steady_clock;

// ---- the units of work ----

// One request on its own connection, as a coroutine: 1 when the reply is
// "200" with body <id>.
aio::Task<int> fetch_async(int port, int id) {
  auto [reader, writer] =
      co_await aio::open_connection("127.0.0.1", static_cast<std::uint16_t>(port));
  writer.write("GET /" + std::to_string(id) +
               " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  co_await writer.drain();
  std::string reply = co_await reader.read();  // the server closes after the reply
  writer.close();
  auto body = reply.find("\r\n\r\n");
  bool ok = reply.starts_with("HTTP/1.1 200") && body != std::string::npos &&
            reply.substr(body + 4) == std::to_string(id);
  co_return ok ? 1 : 0;
}

void wait_blocking(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

// ---- the tools, each given n calls of `call(i)` to make ----

long long sum_sequential(int n, const std::function<long long(int)>& call) {
  long long total = 0;
  for (int i = 0; i < n; ++i) total += call(i);
  return total;
}

long long sum_threads(int n, const std::function<long long(int)>& call) {
  std::vector<long long> out(static_cast<std::size_t>(n));
  std::vector<std::thread> threads;
  threads.reserve(out.size());
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] { out[static_cast<std::size_t>(i)] = call(i); });
  for (auto& t : threads) t.join();
  long long total = 0;
  for (long long v : out) total += v;
  return total;
}

long long sum_thread_pool(std::size_t workers, int n, const std::function<long long(int)>& call) {
  exec::ThreadPool pool(workers);
  std::vector<celeriac::Future<long long>> futures;
  for (int i = 0; i < n; ++i) futures.push_back(pool.submit(call, i));
  long long total = 0;
  for (auto& f : futures) total += f.result();
  return total;
}

// mp::ProcessPool takes plain functions: one per workload.
long long sum_process_pool(std::size_t workers, int n, const Sizes& s, int port,
                           std::string_view what) {
  mp::ProcessPool pool(workers);
  std::vector<celeriac::Future<long long>> futures;
  for (int i = 0; i < n; ++i) {
    if (what == "io")
      futures.push_back(pool.submit(
          +[](int p, int id) -> long long { return fetch_blocking(p, id); }, port, i));
    else
      futures.push_back(pool.submit(&count_chunk, s.limit, s.chunks, i));
  }
  long long total = 0;
  for (auto& f : futures) total += f.result();
  return total;
}

// ---- tq: a worker in this process on the embedded SQLite broker ----

struct TqRun {
  std::string pool;
  int concurrency;
};

// Registers the three tasks, starts a worker with `run.pool`, sends n calls
// of `task` and adds up their results (each fetched from the result store).
long long sum_tq(const RowArgs& a, const TqRun& run, const std::string& task, RowResult& r) {
  tq::App app("sqlite:///" + a.broker_dir + "/guide.db", "");
  const Sizes& s = a.sizes;
  app.task("guide.fetch", {"port", "id"},
           [](int port, int id) { return fetch_blocking(port, id); });
  app.task("guide.fetch_async", {"port", "id"},
           [](int port, int id) -> aio::Task<int> { co_return co_await fetch_async(port, id); });
  app.task("guide.count", {"limit", "chunks", "index"}, &count_chunk);
  tq::WorkerOptions wo;
  wo.pool = run.pool;
  wo.concurrency = run.concurrency;
  wo.hostname = "celery@guide";
  wo.poll_interval = std::chrono::milliseconds(20);
  tq::Worker worker(app, wo);
  worker.start();
  auto t0 = Clock::now();
  int n = task == "guide.count" ? s.chunks : s.requests;
  std::vector<tq::AsyncResult<tq::Json>> results;
  for (int i = 0; i < n; ++i) {
    tq::Json args = task == "guide.count" ? tq::Json::array({s.limit, s.chunks, i})
                                          : tq::Json::array({a.port, i});
    results.push_back(app.send_task(task, std::move(args)));
  }
  long long total = 0;
  for (auto& res : results) total += res.get(std::chrono::seconds(600)).get<long long>();
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  worker.stop();
  worker.wait(std::chrono::seconds(60));
  return total;
}

// ---- the rows ----

using RowFn = std::function<long long(const RowArgs&, RowResult&)>;

std::map<std::string, RowFn> make_rows() {
  std::map<std::string, RowFn> rows;
  auto io_call = [](const RowArgs& a) {
    return [port = a.port](int i) -> long long { return fetch_blocking(port, i); };
  };
  auto wait_call = [](const RowArgs& a) {
    return [ms = a.sizes.delay_ms](int) -> long long {
      wait_blocking(ms);
      return 1;
    };
  };
  auto cpu_call = [](const RowArgs& a) {
    return [s = a.sizes](int i) -> long long { return count_chunk(s.limit, s.chunks, i); };
  };
  // I/O-bound: HTTP requests.
  rows["io.sequential"] = [=](const RowArgs& a, RowResult&) {
    return sum_sequential(a.sizes.requests, io_call(a));
  };
  rows["io.threads"] = [=](const RowArgs& a, RowResult&) {
    return sum_threads(a.sizes.requests, io_call(a));
  };
  rows["io.pool8"] = [=](const RowArgs& a, RowResult&) {
    return sum_thread_pool(8, a.sizes.requests, io_call(a));
  };
  rows["io.pool64"] = [=](const RowArgs& a, RowResult&) {
    return sum_thread_pool(64, a.sizes.requests, io_call(a));
  };
  rows["io.procpool"] = [](const RowArgs& a, RowResult&) {
    return sum_process_pool(16, a.sizes.requests, a.sizes, a.port, "io");
  };
  rows["io.aio"] = [](const RowArgs& a, RowResult&) {
    return aio::run([](int n, int port) -> aio::Task<long long> {
      std::vector<aio::Task<int>> fetches;
      for (int i = 0; i < n; ++i) fetches.push_back(fetch_async(port, i));
      long long total = 0;
      for (int ok : co_await aio::gather(std::move(fetches))) total += ok;
      co_return total;
    }(a.sizes.requests, a.port));
  };
  rows["io.tq_threads"] = [](const RowArgs& a, RowResult& r) {
    return sum_tq(a, {"threads", 64}, "guide.fetch", r);
  };
  rows["io.tq_async"] = [](const RowArgs& a, RowResult& r) {
    return sum_tq(a, {"async", a.sizes.requests}, "guide.fetch_async", r);
  };
  // Many concurrent waits.
  rows["wait.threads"] = [=](const RowArgs& a, RowResult&) {
    return sum_threads(a.sizes.waits, wait_call(a));
  };
  rows["wait.pool64"] = [=](const RowArgs& a, RowResult&) {
    return sum_thread_pool(64, a.sizes.waits, wait_call(a));
  };
  rows["wait.aio"] = [](const RowArgs& a, RowResult&) {
    return aio::run([](int n, int ms) -> aio::Task<long long> {
      std::vector<aio::Task<long long>> waits;
      for (int i = 0; i < n; ++i)
        waits.push_back([](int ms) -> aio::Task<long long> {
          co_await aio::sleep(std::chrono::milliseconds(ms));
          co_return 1;
        }(ms));
      long long total = 0;
      for (long long one : co_await aio::gather(std::move(waits))) total += one;
      co_return total;
    }(a.sizes.waits, a.sizes.delay_ms));
  };
  // CPU-bound: primes in chunks.
  rows["cpu.sequential"] = [=](const RowArgs& a, RowResult&) {
    return sum_sequential(a.sizes.chunks, cpu_call(a));
  };
  rows["cpu.threads"] = [=](const RowArgs& a, RowResult&) {
    return sum_threads(a.sizes.chunks, cpu_call(a));
  };
  rows["cpu.pool"] = [=](const RowArgs& a, RowResult&) {
    return sum_thread_pool(exec::ThreadPool::default_max_workers(), a.sizes.chunks, cpu_call(a));
  };
  rows["cpu.procpool"] = [](const RowArgs& a, RowResult&) {
    return sum_process_pool(0, a.sizes.chunks, a.sizes, a.port, "cpu");
  };
  rows["cpu.aio_to_thread"] = [](const RowArgs& a, RowResult&) {
    return aio::run([](Sizes s) -> aio::Task<long long> {
      std::vector<aio::Task<long long>> counts;
      for (int i = 0; i < s.chunks; ++i)
        counts.push_back([](Sizes s, int i) -> aio::Task<long long> {
          co_return co_await aio::to_thread(&count_chunk, s.limit, s.chunks, i);
        }(s, i));
      long long total = 0;
      for (long long c : co_await aio::gather(std::move(counts))) total += c;
      co_return total;
    }(a.sizes));
  };
  rows["cpu.tq_processes"] = [](const RowArgs& a, RowResult& r) {
    return sum_tq(a, {"processes", static_cast<int>(exec::ThreadPool::default_max_workers())},
                  "guide.count", r);
  };
  // Mixed: coroutines fetch, a thread pool computes (the aio/exec seam).
  rows["mixed.aio_pool"] = [](const RowArgs& a, RowResult&) {
    exec::ThreadPool pool;
    return aio::run([](exec::ThreadPool& pool, Sizes s, int port) -> aio::Task<long long> {
      std::vector<aio::Task<long long>> steps;
      for (int i = 0; i < s.mixed_fetches; ++i)
        steps.push_back(
            [](exec::ThreadPool& pool, Sizes s, int port, int i) -> aio::Task<long long> {
              if (co_await fetch_async(port, i) != 1)
                co_return -1'000'000'000;  // a wrong reply spoils the sum
              co_return co_await pool.submit(&count_chunk, s.limit, s.chunks, i % s.chunks);
            }(pool, s, port, i));
      long long total = 0;
      for (long long c : co_await aio::gather(std::move(steps))) total += c;
      co_return total;
    }(pool, a.sizes, a.port));
  };
  return rows;
}

}  // namespace

long long count_primes(long long lo, long long hi) {
  long long count = 0;
  for (long long n = std::max(lo, 2LL); n < hi; ++n) {
    bool prime = n == 2 || n % 2 != 0;
    for (long long d = 3; prime && d * d <= n; d += 2)
      if (n % d == 0) prime = false;
    count += prime;
  }
  return count;
}

long long count_chunk(long long limit, int chunks, int index) {
  long long lo = limit * index / chunks, hi = limit * (index + 1) / chunks;
  return count_primes(lo, hi);
}

long long expected_primes(long long limit) {
  if (limit < 3) return 0;
  std::vector<bool> composite(static_cast<std::size_t>(limit), false);
  long long count = 0;
  for (long long n = 2; n < limit; ++n) {
    if (composite[static_cast<std::size_t>(n)]) continue;
    ++count;
    for (long long m = n * n; m < limit; m += n) composite[static_cast<std::size_t>(m)] = true;
  }
  return count;
}

int fetch_blocking(int port, int id) {
  httplib::Client client("127.0.0.1", port);
  client.set_keep_alive(false);
  auto res = client.Get("/" + std::to_string(id));
  return res && res->status == 200 && res->body == std::to_string(id) ? 1 : 0;
}

Sizes quick_sizes() {
  Sizes s;
  s.requests = 20;
  s.waits = 200;
  s.chunks = 8;
  s.limit = 20000;
  s.mixed_fetches = 8;
  return s;
}

RowResult run_cpp_row(const RowArgs& args) {
  static const auto rows = make_rows();
  auto it = rows.find(args.row);
  if (it == rows.end())
    throw std::invalid_argument("celeriac-guide: no C++ row named '" + args.row + "'");
  RowResult r;
  auto t0 = Clock::now();
  r.value = it->second(args, r);
  if (r.wall_s == 0) r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return r;
}

}  // namespace guide
