// One future type across layers: a ProcessPool future is the celeriac::Future
// the thread pool returns, and an aio coroutine co_awaits it on the event loop
// (asyncio's run_in_executor with a ProcessPoolExecutor).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "celeriac/aio/future_await.hpp"
#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/exec/thread_pool.hpp"
#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {
int square(int x) {
  return x * x;
}
int child_pid() {
  return static_cast<int>(::getpid());
}
int fail_with(std::string msg) {
  throw std::out_of_range(msg);
}
int slow_square(int x) {
  ::usleep(50 * 1000);
  return x * x;
}
}  // namespace

TEST(ProcessPoolAio, SameFutureTypeAsTheThreadPool) {
  mp::ProcessPool procs(1);
  exec::ThreadPool threads(1);
  using FromProcs = decltype(procs.submit(&square, 3));
  using FromThreads = decltype(threads.submit(&square, 3));
  static_assert(std::is_same_v<FromProcs, Future<int>>);
  static_assert(std::is_same_v<FromProcs, FromThreads>);
  // Both can be combined by the futures layer as one kind of thing.
  std::vector<Future<int>> both{procs.submit(&square, 3), threads.submit(&square, 4)};
  EXPECT_EQ(both[0].result(10s) + both[1].result(10s), 25);
}

TEST(ProcessPoolAio, CoAwaitOnTheEventLoop) {
  mp::ProcessPool pool(2);
  auto main = [&]() -> aio::Task<int> {
    int pid = co_await pool.submit(&child_pid);
    EXPECT_NE(pid, static_cast<int>(::getpid()));
    // The loop keeps running other tasks while a process computes.
    int ticks = 0;
    auto ticker = aio::spawn([](int& n) -> aio::Task<void> {
      for (;;) {
        co_await aio::sleep(1ms);
        ++n;
      }
    }(ticks));
    int v = co_await pool.submit(&slow_square, 7);
    ticker.cancel();
    EXPECT_GT(ticks, 0);
    co_return v;
  };
  EXPECT_EQ(aio::run(main()), 49);
}

TEST(ProcessPoolAio, ChildExceptionsAndCrashesRaiseInTheCoroutine) {
  mp::ProcessPool pool(1);
  auto main = [&]() -> aio::Task<void> {
    try {
      co_await pool.submit(&fail_with, std::string("index 9"));
      ADD_FAILURE() << "no exception";
    } catch (const std::out_of_range& e) {
      EXPECT_STREQ(e.what(), "index 9");
    }
    try {
      co_await pool.submit([] {
        ::_exit(5);
        return 0;
      });
      ADD_FAILURE() << "no exception";
    } catch (const mp::WorkerDiedError& e) {
      EXPECT_EQ(e.exit_code(), 5);
    }
    EXPECT_EQ(co_await pool.submit(&square, 5), 25);  // replaced, still serving
  };
  aio::run(main());
}
