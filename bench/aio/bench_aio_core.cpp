// bench_aio_core: the event loop's core costs, side by side with Boost.Asio
// (standalone, C++20 coroutines), libuv, Python asyncio and uvloop.
//   (b) 100,000 tasks each sleeping a random 0-1000 ms: memory per pending
//       task (RSS growth / N) and wall time.
//   (c) 1,000,000 sequential create-task-and-await: ns per task.
//   (d) 1,000,000 callbacks posted from another thread: callbacks per second.
// Every measurement runs in a forked child so that one peer's heap does not
// pollute the next one's memory figures. `--quick` runs smaller sizes.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

#ifdef CELERIAC_BENCH_HAVE_ASIO
#include <asio.hpp>
#endif
#ifdef CELERIAC_BENCH_HAVE_UV
#include <uv.h>
#endif

namespace aio = celeriac::aio;
using Clock = std::chrono::steady_clock;

namespace {

struct Result {
  bool ok = false;
  double seconds = 0;
  double bytes_per_task = 0;
};

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

long rss_bytes() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

std::vector<int> random_delays_ms(int n) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> d(0, 1000);
  std::vector<int> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

template <class F>
Result in_child(F fn) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    Result r = fn();
    r.ok = true;
    [[maybe_unused]] auto w = ::write(fds[1], &r, sizeof r);
    ::_exit(0);
  }
  ::close(fds[1]);
  Result r;
  if (::read(fds[0], &r, sizeof r) != sizeof r) r = {};
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return r;
}

Result python(const char* flavour, const char* scenario, int n) {
  std::string cmd = std::string("/usr/bin/python3 ") + CELERIAC_SOURCE_DIR +
                    "/bench/aio/bench_aio_core.py " + flavour + " " + scenario + " " +
                    std::to_string(n) + " 2>/dev/null";
  Result r;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    if (std::fscanf(p, "%lf %lf", &r.seconds, &r.bytes_per_task) == 2) r.ok = true;
    ::pclose(p);
  }
  return r;
}

// ---------------------------------------------------------------- celeriac

aio::Task<void> cel_sleeper(int ms, int* left) {
  co_await aio::sleep(std::chrono::milliseconds(ms));
  --*left;
}

Result cel_sleep(int n) {
  auto delays = random_delays_ms(n);
  Result r;
  aio::EventLoop loop;
  auto main = [&]() -> aio::Task<void> {
    int left = n;
    auto t0 = Clock::now();
    long before = rss_bytes();
    for (int i = 0; i < n; ++i) aio::spawn(cel_sleeper(delays[static_cast<std::size_t>(i)], &left));
    co_await aio::yield_now();  // every task has started and sleeps
    r.bytes_per_task = static_cast<double>(rss_bytes() - before) / n;
    while (left > 0) co_await aio::sleep(std::chrono::milliseconds(1));
    r.seconds = since(t0);
  };
  loop.run_until_complete(main());
  return r;
}

aio::Task<void> cel_noop() {
  co_return;
}

Result cel_spawn(int n) {
  Result r;
  aio::EventLoop loop;
  auto main = [&]() -> aio::Task<void> {
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) co_await aio::spawn(cel_noop());
    r.seconds = since(t0);
  };
  loop.run_until_complete(main());
  return r;
}

Result cel_post(int n) {
  Result r;
  aio::EventLoop loop;
  int count = 0;
  Clock::time_point t0;
  std::atomic<bool> go{false};
  std::thread producer([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < n; ++i) {
      loop.call_soon_threadsafe([&] {
        if (++count == n) loop.stop();
      });
    }
  });
  loop.call_soon([&] {
    t0 = Clock::now();
    go = true;
  });
  loop.run_forever();
  r.seconds = since(t0);
  producer.join();
  return r;
}

// ---------------------------------------------------------------- Asio

#ifdef CELERIAC_BENCH_HAVE_ASIO
asio::awaitable<void> asio_sleeper(int ms, int* left) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
  --*left;
}

Result asio_sleep(int n) {
  auto delays = random_delays_ms(n);
  Result r;
  asio::io_context ctx(1);
  int left = n;
  auto t0 = Clock::now();
  long before = rss_bytes();
  for (int i = 0; i < n; ++i)
    asio::co_spawn(ctx, asio_sleeper(delays[static_cast<std::size_t>(i)], &left), asio::detached);
  asio::post(ctx, [&] { r.bytes_per_task = static_cast<double>(rss_bytes() - before) / n; });
  ctx.run();
  r.seconds = since(t0);
  return r;
}

asio::awaitable<void> asio_noop() {
  co_return;
}

Result asio_spawn(int n) {
  Result r;
  asio::io_context ctx(1);
  asio::co_spawn(
      ctx,
      [&]() -> asio::awaitable<void> {
        auto ex = co_await asio::this_coro::executor;
        auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) co_await asio::co_spawn(ex, asio_noop(), asio::use_awaitable);
        r.seconds = since(t0);
      },
      asio::detached);
  ctx.run();
  return r;
}

Result asio_post(int n) {
  Result r;
  asio::io_context ctx(1);
  auto guard = asio::make_work_guard(ctx);
  int count = 0;
  Clock::time_point t0;
  std::atomic<bool> go{false};
  std::thread producer([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < n; ++i) {
      asio::post(ctx, [&] {
        if (++count == n) ctx.stop();
      });
    }
  });
  asio::post(ctx, [&] {
    t0 = Clock::now();
    go = true;
  });
  ctx.run();
  r.seconds = since(t0);
  producer.join();
  return r;
}
#endif

// ---------------------------------------------------------------- libuv

#ifdef CELERIAC_BENCH_HAVE_UV
struct UvSleeper {
  uv_timer_t timer;
  int* left;
};

Result uv_sleep(int n) {
  auto delays = random_delays_ms(n);
  Result r;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int left = n;
  auto t0 = Clock::now();
  long before = rss_bytes();
  for (int i = 0; i < n; ++i) {
    auto* s = new UvSleeper;
    s->left = &left;
    uv_timer_init(&loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(
        &s->timer,
        [](uv_timer_t* t) {
          auto* s = static_cast<UvSleeper*>(t->data);
          --*s->left;
          uv_close(reinterpret_cast<uv_handle_t*>(t),
                   [](uv_handle_t* h) { delete static_cast<UvSleeper*>(h->data); });
        },
        static_cast<std::uint64_t>(delays[static_cast<std::size_t>(i)]), 0);
  }
  r.bytes_per_task = static_cast<double>(rss_bytes() - before) / n;
  uv_run(&loop, UV_RUN_DEFAULT);
  r.seconds = since(t0);
  uv_loop_close(&loop);
  return r;
}

struct UvPost {
  uv_async_t async;
  std::mutex mu;
  std::vector<std::function<void()>> queue, work;
};

Result uv_post(int n) {
  Result r;
  uv_loop_t loop;
  uv_loop_init(&loop);
  UvPost p;
  int count = 0;
  p.async.data = &p;
  uv_async_init(&loop, &p.async, [](uv_async_t* a) {
    auto* p = static_cast<UvPost*>(a->data);
    {
      std::lock_guard<std::mutex> g(p->mu);
      p->work.swap(p->queue);
    }
    for (auto& f : p->work) f();
    p->work.clear();
  });
  auto t0 = Clock::now();
  std::thread producer([&] {
    for (int i = 0; i < n; ++i) {
      {
        std::lock_guard<std::mutex> g(p.mu);
        p.queue.push_back([&] {
          if (++count == n) uv_close(reinterpret_cast<uv_handle_t*>(&p.async), nullptr);
        });
      }
      uv_async_send(&p.async);
    }
  });
  uv_run(&loop, UV_RUN_DEFAULT);
  r.seconds = since(t0);
  producer.join();
  uv_loop_close(&loop);
  return r;
}
#endif

// ---------------------------------------------------------------- report

struct Row {
  std::string name;
  Result r;
};

void progress(const char* scenario, const std::string& name, const Result& r) {
  if (r.ok)
    std::printf("  .. %s %-10s done in %.3f s\n", scenario, name.c_str(), r.seconds);
  else
    std::printf("  .. %s %-10s unavailable or failed\n", scenario, name.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
      return 2;
    }
  }
  const int n_sleep = quick ? 20'000 : 100'000;
  const int n_spawn = quick ? 100'000 : 1'000'000;
  const int n_post = quick ? 200'000 : 1'000'000;
  // Python is ~100x slower per task: fewer iterations, reported per task.
  const int py_spawn = n_spawn / 10;
  const int py_post = n_post / 10;

  std::printf("bench_aio_core%s (machine shared and loaded: figures are noisy)\n",
              quick ? " --quick" : "");

  // (b)
  std::printf("(b) %d tasks sleeping a random 0-1000 ms\n", n_sleep);
  std::vector<Row> b;
  auto add_b = [&](const std::string& name, Result r) {
    progress("(b)", name, r);
    b.push_back({name, r});
  };
  add_b("celeriac", in_child([&] { return cel_sleep(n_sleep); }));
#ifdef CELERIAC_BENCH_HAVE_ASIO
  add_b("asio", in_child([&] { return asio_sleep(n_sleep); }));
#endif
#ifdef CELERIAC_BENCH_HAVE_UV
  add_b("libuv", in_child([&] { return uv_sleep(n_sleep); }));
#endif
  add_b("asyncio", python("asyncio", "sleep", n_sleep));
  add_b("uvloop", python("uvloop", "sleep", n_sleep));

  // (c)
  std::printf("(c) sequential create-task-and-await (%d; Python %d)\n", n_spawn, py_spawn);
  std::vector<Row> c;
  auto add_c = [&](const std::string& name, Result r, int n) {
    progress("(c)", name, r);
    if (r.ok) r.seconds = r.seconds / n * 1e9;  // ns per task
    c.push_back({name, r});
  };
  add_c("celeriac", in_child([&] { return cel_spawn(n_spawn); }), n_spawn);
#ifdef CELERIAC_BENCH_HAVE_ASIO
  add_c("asio", in_child([&] { return asio_spawn(n_spawn); }), n_spawn);
#endif
  add_c("asyncio", python("asyncio", "spawn", py_spawn), py_spawn);
  add_c("uvloop", python("uvloop", "spawn", py_spawn), py_spawn);

  // (d)
  std::printf("(d) callbacks posted from another thread (%d; Python %d)\n", n_post, py_post);
  std::vector<Row> d;
  auto add_d = [&](const std::string& name, Result r, int n) {
    progress("(d)", name, r);
    if (r.ok) r.seconds = n / r.seconds;  // callbacks per second
    d.push_back({name, r});
  };
  add_d("celeriac", in_child([&] { return cel_post(n_post); }), n_post);
#ifdef CELERIAC_BENCH_HAVE_ASIO
  add_d("asio", in_child([&] { return asio_post(n_post); }), n_post);
#endif
#ifdef CELERIAC_BENCH_HAVE_UV
  add_d("libuv", in_child([&] { return uv_post(n_post); }), n_post);
#endif
  add_d("asyncio", python("asyncio", "post", py_post), py_post);
  add_d("uvloop", python("uvloop", "post", py_post), py_post);

  std::printf("\n(b) sleeping tasks        wall s   B/task   celeriac wall ratio  B/task ratio\n");
  for (auto& row : b) {
    if (!row.r.ok) continue;
    std::printf("    %-10s %14.3f %8.0f   %10.2fx %14.2fx\n", row.name.c_str(), row.r.seconds,
                row.r.bytes_per_task, b[0].r.seconds / row.r.seconds,
                row.r.bytes_per_task > 0 ? b[0].r.bytes_per_task / row.r.bytes_per_task : 0.0);
  }
  std::printf("    targets: <= 1.03 s wall, <= 256 B per pending task\n");
  std::printf("\n(c) create-task-and-await  ns/task   peer/celeriac (higher = celeriac faster)\n");
  for (auto& row : c) {
    if (!row.r.ok) continue;
    std::printf("    %-10s %14.1f %10.1fx\n", row.name.c_str(), row.r.seconds,
                row.r.seconds / c[0].r.seconds);
  }
  std::printf("    target: <= 50 ns per task\n");
  std::printf("\n(d) cross-thread posts     M/s      celeriac/peer\n");
  for (auto& row : d) {
    if (!row.r.ok) continue;
    std::printf("    %-10s %14.2f %10.1fx\n", row.name.c_str(), row.r.seconds / 1e6,
                d[0].r.seconds / row.r.seconds);
  }
  std::printf("    target: >= 10 M/s\n");
  return 0;
}
