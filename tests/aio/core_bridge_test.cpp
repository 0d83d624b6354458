// Bridges: co_await a celeriac::Future, to_thread, run_in_executor,
// spawn_threadsafe / run_coroutine_threadsafe, cross-thread posting.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "celeriac/aio/future_await.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/futures.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

// A one-thread executor for run_in_executor.
class OneThread {
 public:
  OneThread() : t_([this] { loop(); }) {}
  ~OneThread() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> g(mu_);
      jobs_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }
  std::thread::id id() const { return t_.get_id(); }

 private:
  void loop() {
    std::unique_lock<std::mutex> g(mu_);
    for (;;) {
      cv_.wait(g, [&] { return stop_ || !jobs_.empty(); });
      if (jobs_.empty()) return;
      auto j = std::move(jobs_.front());
      jobs_.pop_front();
      g.unlock();
      j();
      g.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::thread t_;
};

aio::Task<int> slow_value(aio::Duration d, int v) {
  co_await aio::sleep(d);
  co_return v;
}

aio::Task<int> failing() {
  co_await aio::yield_now();
  throw std::runtime_error("task failed");
}

}  // namespace

TEST(AioBridge, AwaitFutureCompletedByAnotherThread) {
  Promise<int> p;
  auto f = p.get_future();
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    p.set_value(5);
  });
  auto main = [&]() -> aio::Task<int> {
    int ticks = 0;
    auto ticker = aio::spawn([](int* n) -> aio::Task<void> {
      for (;;) {
        co_await aio::sleep(1ms);
        ++*n;
      }
    }(&ticks));
    int v = co_await f;
    ticker.cancel();
    EXPECT_GT(ticks, 0);  // the loop kept running while waiting
    co_return v;
  };
  EXPECT_EQ(aio::run(main()), 5);
  t.join();
}

TEST(AioBridge, FutureErrorsAndReadyFutures) {
  auto main = []() -> aio::Task<void> {
    EXPECT_EQ(co_await make_ready_future(3), 3);
    co_await make_ready_future();
    EXPECT_THROW(
        co_await make_exceptional_future<int>(std::make_exception_ptr(std::logic_error("x"))),
        std::logic_error);
    Promise<int> p;
    auto f = p.get_future();
    f.cancel();
    EXPECT_THROW(co_await f, CancelledError);
    EXPECT_THROW(co_await Future<int>(), InvalidStateError);
  };
  aio::run(main());
}

TEST(AioBridge, CancellingTheAwaiterOfAFutureJustStopsWaiting) {
  Promise<int> p;
  auto f = p.get_future();
  auto main = [&]() -> aio::Task<void> {
    auto waiter = aio::spawn([](Future<int> f) -> aio::Task<int> { co_return co_await f; }(f));
    co_await aio::sleep(5ms);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, CancelledError);
    EXPECT_FALSE(f.done());  // the future itself is untouched
  };
  aio::run(main());
  p.set_value(1);  // completing it later touches nothing freed
  EXPECT_EQ(f.result(), 1);
}

TEST(AioBridge, ToThreadAndRunInExecutor) {
  OneThread ex;
  auto main = [&]() -> aio::Task<void> {
    auto loop_thread = std::this_thread::get_id();
    auto id = co_await aio::to_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(id, loop_thread);
    EXPECT_EQ(co_await aio::to_thread([](int a, int b) { return a + b; }, 2, 3), 5);
    EXPECT_THROW(co_await aio::to_thread([]() -> int { throw std::runtime_error("in thread"); }),
                 std::runtime_error);
    auto eid = co_await aio::run_in_executor(ex, [] { return std::this_thread::get_id(); });
    EXPECT_EQ(eid, ex.id());
    co_await aio::run_in_executor(ex, [] {});
  };
  aio::run(main());
}

TEST(AioBridge, SpawnThreadsafeReturnsFuture) {
  aio::EventLoop* loop_ptr = nullptr;
  std::atomic<bool> ready{false};
  std::thread loop_thread([&] {
    aio::EventLoop loop;
    loop_ptr = &loop;
    ready = true;
    loop.run_forever();
  });
  while (!ready) std::this_thread::yield();
  aio::EventLoop& loop = *loop_ptr;

  Future<int> f = loop.spawn_threadsafe(slow_value(1ms, 11));
  EXPECT_EQ(f.result(5s), 11);

  // Cancelling the Future cancels the task.
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  Future<int> g = aio::run_coroutine_threadsafe(
      [](std::shared_ptr<std::atomic<bool>> s,
         std::shared_ptr<std::atomic<bool>> c) -> aio::Task<int> {
        *s = true;
        try {
          co_await aio::sleep(60s);
        } catch (const CancelledError&) {
          *c = true;
          throw;
        }
        co_return 0;
      }(started, cancelled),
      loop);
  while (!*started) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(g.cancel());
  for (int i = 0; i < 5000 && !*cancelled; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(*cancelled);

  // Errors travel through the Future.
  Future<int> h = loop.spawn_threadsafe(failing());
  EXPECT_THROW(h.result(5s), std::runtime_error);

  loop.stop();
  loop_thread.join();
}

TEST(AioBridge, CallSoonThreadsafeFromManyThreads) {
  aio::EventLoop loop;
  constexpr int kThreads = 4, kEach = 5000;
  int count = 0;  // loop thread only
  std::vector<std::thread> producers;
  for (int t = 0; t < kThreads; ++t) {
    producers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) loop.call_soon_threadsafe([&] { ++count; });
    });
  }
  auto main = [&]() -> aio::Task<void> {
    while (count < kThreads * kEach) co_await aio::sleep(1ms);
  };
  loop.run_until_complete(main());
  for (auto& t : producers) t.join();
  EXPECT_EQ(count, kThreads * kEach);
}

TEST(AioBridge, LoopClosedBeforeSpawnedTaskFinishesBreaksTheFuture) {
  Future<int> f;
  {
    aio::EventLoop loop;
    f = loop.spawn_threadsafe(slow_value(60s, 1));
    loop.run_until_complete([]() -> aio::Task<void> { co_await aio::sleep(1ms); }());
  }
  EXPECT_THROW(f.result(1s), BrokenPromise);
}
