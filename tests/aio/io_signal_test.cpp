// add_signal_handler: signals arrive as callbacks on the loop's thread
// (whichever thread raised them), handlers can be replaced and removed, bad
// signal numbers are refused, and a throwing handler is reported, not fatal.
//
// The signals are sent to the loop's own thread with pthread_kill: a
// process-directed kill() could be taken by another thread of the test
// program (e.g. a resolver thread) that does not block the signal.
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/aio/queue.hpp"
#include "celeriac/aio/signal.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/timeout.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

// Raises `sig` for the loop's thread from another thread.
void raise_from_another_thread(pthread_t target, int sig) {
  std::thread([target, sig] { pthread_kill(target, sig); }).join();
}

}  // namespace

TEST(AioIoSignal, HandlerRunsOnTheLoopThreadForSignalsFromAnyThread) {
  auto main = []() -> aio::Task<void> {
    aio::EventLoop& loop = aio::EventLoop::current();
    aio::Queue<int> seen;
    bool on_loop_thread = true;
    aio::add_signal_handler(SIGUSR1, [&] {
      on_loop_thread = on_loop_thread && loop.in_loop_thread();
      seen.put_nowait(1);
    });
    aio::add_signal_handler(SIGUSR2, [&] { seen.put_nowait(2); });
    pthread_t me = pthread_self();
    EXPECT_EQ(pthread_kill(me, SIGUSR1), 0);  // from the loop thread itself
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), 1);
    raise_from_another_thread(me, SIGUSR2);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), 2);
    raise_from_another_thread(me, SIGUSR1);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), 1);
    EXPECT_TRUE(on_loop_thread);
    EXPECT_TRUE(aio::remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(aio::remove_signal_handler(SIGUSR1));
    EXPECT_TRUE(aio::remove_signal_handler(SIGUSR2));
  };
  aio::run(main());
}

TEST(AioIoSignal, ReplacingAHandlerAndAThrowingHandler) {
  auto main = []() -> aio::Task<void> {
    aio::EventLoop& loop = aio::EventLoop::current();
    std::vector<std::string> warnings;
    loop.set_warning_handler([&](std::string_view w) { warnings.emplace_back(w); });
    aio::Queue<std::string> seen;
    aio::add_signal_handler(SIGUSR1, [&] { seen.put_nowait("old"); });
    aio::add_signal_handler(SIGUSR1, [&] { seen.put_nowait("new"); });
    pthread_kill(pthread_self(), SIGUSR1);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), "new");
    aio::add_signal_handler(SIGUSR1, [&]() {
      seen.put_nowait("threw");
      throw std::runtime_error("handler failed");
    });
    pthread_kill(pthread_self(), SIGUSR1);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), "threw");
    // The loop goes on and the next signal is still delivered.
    pthread_kill(pthread_self(), SIGUSR1);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), "threw");
    EXPECT_EQ(warnings.size(), 2u);
    for (const auto& w : warnings) EXPECT_NE(w.find("handler failed"), std::string::npos) << w;
    EXPECT_TRUE(aio::remove_signal_handler(SIGUSR1));
  };
  aio::run(main());
}

TEST(AioIoSignal, BadSignalsAndCallsOutsideTheLoop) {
  auto main = []() -> aio::Task<void> {
    EXPECT_THROW(aio::add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
    EXPECT_THROW(aio::add_signal_handler(SIGSTOP, [] {}), std::invalid_argument);
    EXPECT_THROW(aio::add_signal_handler(0, [] {}), std::invalid_argument);
    EXPECT_THROW(aio::add_signal_handler(100000, [] {}), std::invalid_argument);
    EXPECT_THROW(aio::add_signal_handler(SIGUSR1, std::function<void()>{}), std::invalid_argument);
    EXPECT_FALSE(aio::remove_signal_handler(SIGUSR2));
    co_return;
  };
  aio::run(main());
  EXPECT_THROW(aio::add_signal_handler(SIGUSR1, [] {}), Error);  // no running loop
  aio::EventLoop idle;
  EXPECT_THROW(aio::add_signal_handler(idle, SIGUSR1, [] {}), Error);  // not running
}

TEST(AioIoSignal, HandlersDoNotStopTheVirtualClockAndEndWithTheLoop) {
  auto main = []() -> aio::Task<void> {
    int calls = 0;
    aio::add_signal_handler(SIGUSR1, [&] { ++calls; });
    // Waiting for signals must not hold virtual time: this sleep is instant.
    aio::EventLoop& loop = aio::EventLoop::current();
    auto t0 = loop.time();
    co_await aio::sleep(3600s);
    EXPECT_EQ(loop.time() - t0, std::chrono::duration_cast<aio::Duration>(3600s));
    EXPECT_EQ(calls, 0);
    // The handler is left installed: asyncio.run's cleanup ends its reader.
  };
  aio::LoopOptions o;
  o.virtual_clock = true;
  aio::run(main(), o);
  // Installing it again on a new loop works (the old registry is gone).
  auto again = []() -> aio::Task<void> {
    aio::Queue<int> seen;
    aio::add_signal_handler(SIGUSR1, [&] { seen.put_nowait(1); });
    pthread_kill(pthread_self(), SIGUSR1);
    EXPECT_EQ(co_await aio::wait_for(seen.get(), 10s), 1);
    EXPECT_TRUE(aio::remove_signal_handler(SIGUSR1));
  };
  aio::run(again());
}
