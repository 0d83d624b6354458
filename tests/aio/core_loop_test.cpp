#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aio_test_util.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

TEST(AioLoop, RunReturnsValue) {
  auto main = []() -> aio::Task<int> { co_return 42; };
  EXPECT_EQ(aio::run(main()), 42);
}

TEST(AioLoop, NestedAwaitAndSleepVirtualClock) {
  aio::EventLoop loop(vclock());
  auto child = [](int x) -> aio::Task<int> {
    co_await aio::sleep(1s);
    co_return x * 2;
  };
  auto main = [&]() -> aio::Task<int> {
    auto t0 = loop.time();
    int a = co_await child(3);
    int b = co_await child(4);
    EXPECT_EQ(loop.time() - t0, 2s);
    co_return a + b;
  };
  EXPECT_EQ(loop.run_until_complete(main()), 14);
}

TEST(AioLoop, CancelSleepingTask) {
  aio::EventLoop loop(vclock());
  bool cleaned = false;
  auto sleeper = [&]() -> aio::Task<void> {
    try {
      co_await aio::sleep(10s);
    } catch (const CancelledError&) {
      cleaned = true;
      throw;
    }
  };
  auto main = [&]() -> aio::Task<void> {
    auto h = aio::spawn(sleeper());
    co_await aio::sleep(1s);
    EXPECT_TRUE(h.cancel());
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_TRUE(h.cancelled());
  };
  loop.run_until_complete(main());
  EXPECT_TRUE(cleaned);
}

#include <fcntl.h>
#include <unistd.h>

#include <system_error>
#include <thread>

#include "celeriac/aio/fd_watch.hpp"

namespace {

aio::Task<void> sleep_for(aio::Duration d) {
  co_await aio::sleep(d);
}

aio::Task<int> record_cancel(aio::Duration d, bool* flag) {
  try {
    co_await aio::sleep(d);
  } catch (const CancelledError&) {
    *flag = true;
    throw;
  }
  co_return 1;
}

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category());
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    ::close(r);
    ::close(w);
  }
};

aio::Task<std::string> read_some(aio::FdWatch* watch) {
  char buf[64];
  for (;;) {
    ssize_t n = ::read(watch->fd(), buf, sizeof buf);
    if (n >= 0) co_return std::string(buf, static_cast<std::size_t>(n));
    if (errno != EAGAIN) throw std::system_error(errno, std::generic_category(), "read");
    co_await watch->readable();
  }
}

}  // namespace

TEST(AioLoop, CallSoonFifoCallLaterAndCancel) {
  aio::EventLoop loop(vclock());
  std::vector<int> order;
  auto main = [&]() -> aio::Task<void> {
    loop.call_soon([&] { order.push_back(1); });
    loop.call_soon([&] { order.push_back(2); });
    auto h = loop.call_later(2s, [&] { order.push_back(99); });
    loop.call_later(1s, [&] { order.push_back(3); });
    loop.call_at(loop.time() + 3s, [&] { order.push_back(4); });
    co_await aio::sleep(500ms);
    h.cancel();
    EXPECT_TRUE(h.cancelled());
    co_await aio::sleep(5s);
  };
  loop.run_until_complete(main());
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3, 4}));
}

TEST(AioLoop, RunForeverStopAndCurrent) {
  EXPECT_EQ(aio::EventLoop::current_or_null(), nullptr);
  EXPECT_THROW(aio::EventLoop::current(), Error);
  aio::EventLoop loop;
  int n = 0;
  loop.call_soon([&] {
    ++n;
    EXPECT_EQ(&aio::EventLoop::current(), &loop);
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(n, 1);
  EXPECT_FALSE(loop.is_running());
  // A second loop cannot run on a thread that is running one.
  auto nested = [&]() -> aio::Task<void> {
    aio::EventLoop inner;
    EXPECT_THROW(inner.run_until_complete(sleep_for(1ms)), Error);
    co_return;
  };
  loop.run_until_complete(nested());
  // Awaiting outside a running loop is an error, not a hang.
  EXPECT_THROW(aio::sleep(1ms).await_suspend(std::noop_coroutine()), Error);
}

TEST(AioLoop, OneLoopPerThreadSeveralThreads) {
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 3; ++i) {
    ts.emplace_back([&, i] {
      auto main = [](int i) -> aio::Task<int> {
        co_await aio::sleep(std::chrono::milliseconds(1 + i));
        co_return i;
      };
      if (aio::run(main(i)) == i) ++ok;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 3);
}

TEST(AioCancel, BeforeStartNeverRunsAndCountsRequests) {
  aio::EventLoop loop(vclock());
  auto main = [&]() -> aio::Task<void> {
    bool ran = false;
    auto h = aio::spawn([](bool* r) -> aio::Task<void> {
      *r = true;
      co_return;
    }(&ran));
    EXPECT_TRUE(h.cancel());
    EXPECT_EQ(h.cancelling(), 1u);
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_FALSE(ran);
    EXPECT_TRUE(h.cancelled());
    EXPECT_FALSE(h.cancel());  // already done
    EXPECT_THROW(h.result(), CancelledError);
    EXPECT_THROW(h.exception(), CancelledError);

    auto pending = aio::spawn(sleep_for(1s));
    EXPECT_THROW(pending.result(), InvalidStateError);
    co_await pending;
    pending.result();
    EXPECT_EQ(pending.exception(), nullptr);
  };
  loop.run_until_complete(main());
}

TEST(AioCancel, RunningTaskThrowsAtNextSuspensionAndCanCleanUp) {
  aio::EventLoop loop(vclock());
  auto main = [&]() -> aio::Task<void> {
    std::vector<std::string> log;
    aio::TaskHandle<void> self;
    auto body = [&]() -> aio::Task<void> {
      self.cancel();  // cancel ourselves while running
      log.push_back("still running");
      try {
        co_await aio::sleep(1s);  // the next suspension point throws
        log.push_back("not reached");
      } catch (const CancelledError&) {
        log.push_back("cancelled");
      }
      co_await aio::sleep(1s);  // caught: the task goes on
      log.push_back("after");
    };
    self = aio::spawn(body());
    co_await self;
    EXPECT_EQ(log, (std::vector<std::string>{"still running", "cancelled", "after"}));
    EXPECT_FALSE(self.cancelled());
    EXPECT_EQ(self.uncancel(), 0u);
  };
  loop.run_until_complete(main());
}

TEST(AioCancel, PropagatesThroughNestedAwaitsAndAwaitedTasks) {
  aio::EventLoop loop(vclock());
  auto main = [&]() -> aio::Task<void> {
    bool inner_cancelled = false;
    auto nested = [&]() -> aio::Task<int> {
      co_return co_await record_cancel(10s, &inner_cancelled);
    };
    auto h = aio::spawn(nested());
    co_await aio::sleep(1s);
    h.cancel();
    EXPECT_THROW(co_await h, CancelledError);
    EXPECT_TRUE(inner_cancelled);

    // Awaiting a task: cancelling the awaiter cancels the awaited task.
    bool awaited_cancelled = false;
    auto awaited = aio::spawn(record_cancel(10s, &awaited_cancelled));
    auto awaiter =
        aio::spawn([](aio::TaskHandle<int> a) -> aio::Task<int> { co_return co_await a; }(awaited));
    co_await aio::sleep(1s);
    awaiter.cancel();
    EXPECT_THROW(co_await awaiter, CancelledError);
    EXPECT_TRUE(awaited_cancelled);
    EXPECT_TRUE(awaited.cancelled());
  };
  loop.run_until_complete(main());
}

TEST(AioTask, ErrorsPropagateAndTaskAwaitedTwiceIsAnError) {
  aio::EventLoop loop(vclock());
  auto thrower = []() -> aio::Task<int> {
    co_await aio::yield_now();
    throw std::out_of_range("oops");
  };
  auto main = [&]() -> aio::Task<void> {
    EXPECT_THROW(co_await thrower(), std::out_of_range);
    auto h = aio::spawn(thrower(), "thrower");
    EXPECT_EQ(h.name(), "thrower");
    EXPECT_THROW(co_await h, std::out_of_range);
    EXPECT_THROW(co_await h, std::out_of_range);  // a handle can be awaited again
    aio::Task<int> t = thrower();
    EXPECT_THROW(co_await t, std::out_of_range);
    EXPECT_THROW(co_await t, InvalidStateError);  // a coroutine only once
    aio::TaskHandle<int> empty;
    EXPECT_THROW(empty.done(), InvalidStateError);
  };
  loop.run_until_complete(main());
}

TEST(AioLoop, VirtualClockIsExact) {
  aio::EventLoop loop(vclock());
  auto main = [&]() -> aio::Task<void> {
    auto t0 = loop.time();
    std::vector<aio::TaskHandle<void>> hs;
    for (int i = 0; i < 100; ++i) hs.push_back(aio::spawn(sleep_for(std::chrono::seconds(i % 10))));
    for (auto& h : hs) co_await h;
    EXPECT_EQ(loop.time() - t0, 9s);
    co_await aio::sleep_until(t0 + 3600s);
    EXPECT_EQ(loop.time() - t0, 3600s);
  };
  auto real0 = std::chrono::steady_clock::now();
  loop.run_until_complete(main());
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 30s);  // an hour of loop time, no real wait
}

TEST(AioDebug, SlowCallbackUnawaitedTaskAndUnretrievedError) {
  std::vector<std::string> warnings;
  {
    aio::LoopOptions o;
    o.debug = true;
    o.slow_callback_duration = std::chrono::milliseconds(5);
    aio::EventLoop loop(o);
    loop.set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    auto main = [&]() -> aio::Task<void> {
      auto slow = []() -> aio::Task<void> {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));  // blocks the loop
        co_return;
      };
      co_await aio::spawn(slow(), "blocker");
      { auto never = sleep_for(1s); }  // created, never awaited
      auto failing = []() -> aio::Task<void> {
        co_await aio::yield_now();
        throw std::runtime_error("nobody looks");
      };
      { aio::spawn(failing(), "ignored"); }
      co_await aio::sleep(10ms);
    };
    loop.run_until_complete(main());
  }
  auto has = [&](const std::string& needle) {
    for (auto& w : warnings)
      if (w.find(needle) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("Executing task 'blocker'")) << ::testing::PrintToString(warnings);
  EXPECT_TRUE(has("without being awaited")) << ::testing::PrintToString(warnings);
  EXPECT_TRUE(has("never retrieved")) << ::testing::PrintToString(warnings);
  EXPECT_TRUE(has("nobody looks"));
}

TEST(AioLoop, ClosingWithPendingTasksDestroysThemCleanly) {
  bool cancelled = false;
  auto waiter_done = std::make_shared<int>(0);
  {
    aio::EventLoop loop(vclock());
    auto main = [&]() -> aio::Task<void> {
      auto sleeper = aio::spawn(record_cancel(100s, &cancelled));
      aio::spawn([](aio::TaskHandle<int> s, std::shared_ptr<int> d) -> aio::Task<void> {
        co_await s;
        ++*d;
      }(sleeper, waiter_done));
      loop.call_later(50s, [] {});
      co_await aio::sleep(1s);
    };
    loop.run_until_complete(main());
    EXPECT_EQ(loop.pending_tasks(), 2u);
  }  // destroyed with two tasks pending: their frames are freed (ASan checks)
  EXPECT_FALSE(cancelled);  // destroyed, not resumed
  EXPECT_EQ(*waiter_done, 0);
  EXPECT_EQ(waiter_done.use_count(), 1);
}

TEST(AioRun, CancelsRemainingTasksOnExit) {
  bool cancelled = false;
  auto main = [&]() -> aio::Task<int> {
    aio::spawn(record_cancel(100s, &cancelled));
    co_await aio::yield_now();
    co_return 3;
  };
  EXPECT_EQ(aio::run(main()), 3);
  EXPECT_TRUE(cancelled);
}

TEST(AioFdWatch, ReadableCancelCloseAndErrors) {
  aio::EventLoop loop(vclock());
  Pipe p;
  auto main = [&]() -> aio::Task<void> {
    aio::FdWatch watch(loop, p.r);
    EXPECT_EQ(watch.fd(), p.r);
    auto reader = aio::spawn(read_some(&watch));
    co_await aio::sleep(1ms);  // real time passes: the reader holds the clock
    EXPECT_FALSE(reader.done());
    EXPECT_EQ(::write(p.w, "hi", 2), 2);
    EXPECT_EQ(co_await reader, "hi");

    // Two readers at once: the second is refused.
    auto r1 = aio::spawn(read_some(&watch));
    co_await aio::yield_now();
    EXPECT_THROW(co_await read_some(&watch), InvalidStateError);
    // Cancelling a waiter leaves the watch usable.
    r1.cancel();
    EXPECT_THROW(co_await r1, CancelledError);
    EXPECT_EQ(::write(p.w, "again", 5), 5);
    EXPECT_EQ(co_await read_some(&watch), "again");

    // Closing the watch wakes its waiter with EBADF.
    auto r2 = aio::spawn(read_some(&watch));
    co_await aio::yield_now();
    watch.close();
    EXPECT_THROW(co_await r2, std::system_error);
    EXPECT_THROW(watch.readable(), InvalidStateError);
    EXPECT_THROW(aio::FdWatch(loop, -1), std::system_error);

    // Writable: a pipe with room is writable at once.
    aio::FdWatch wwatch(loop, p.w);
    co_await wwatch.writable();
  };
  loop.run_until_complete(main());
}
