// ThreadPool: submit/post/shutdown/initializer semantics, nested waits,
// cross-thread exceptions, and a many-producer stress test.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/exec.hpp"
#include "celeriac/sync/event.hpp"
#include "celeriac/sync/thread_name.hpp"

using namespace std::chrono_literals;
using celeriac::BrokenExecutor;
using celeriac::CancelledError;
using celeriac::Future;
using celeriac::TimeoutError;
using celeriac::exec::ThreadPool;
using celeriac::exec::ThreadPoolExecutor;

namespace {

// A gate that tests open by hand; waits are bounded to avoid hangs.
class Gate {
 public:
  void open() { open_.store(true); }
  void wait() const {
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!open_.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
  }

 private:
  std::atomic<bool> open_{false};
};

}  // namespace

TEST(ThreadPool, SubmitReturnsValue) {
  ThreadPool pool(2);
  EXPECT_EQ(pool.max_workers(), 2u);
  auto f = pool.submit([](int a, int b) { return a + b; }, 2, 3);
  EXPECT_EQ(f.result(5s), 5);
  auto s = pool.submit([](std::string x) { return x + "!"; }, std::string("hi"));
  EXPECT_EQ(std::move(s).result(), "hi!");
}

TEST(ThreadPool, SubmitVoidAndMoveOnlyArgs) {
  ThreadPool pool(2);
  std::atomic<int> hit{0};
  auto f = pool.submit([&hit](std::unique_ptr<int> p) { hit = *p; }, std::make_unique<int>(7));
  f.result(5s);
  EXPECT_EQ(hit.load(), 7);
  auto g = pool.submit([] { return std::make_unique<int>(9); });
  EXPECT_EQ(*std::move(g).result(), 9);
}

TEST(ThreadPool, DefaultMaxWorkersIsHardwareConcurrency) {
  ThreadPool pool;
  EXPECT_EQ(pool.max_workers(), ThreadPool::default_max_workers());
  EXPECT_GE(pool.max_workers(), 1u);
}

TEST(ThreadPool, ZeroWorkersIsRejected) {
  EXPECT_THROW(ThreadPool(0), std::invalid_argument);
}

TEST(ThreadPool, PostRunsEverything) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(3);
    for (int i = 0; i < 10000; ++i) pool.post([&n] { n.fetch_add(1); });
  }  // destructor waits
  EXPECT_EQ(n.load(), 10000);
}

TEST(ThreadPool, PostLargeCallableGoesThroughHeapTask) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(2);
    std::array<char, 200> big{};
    big[0] = 3;
    for (int i = 0; i < 100; ++i) pool.post([&n, big] { n.fetch_add(big[0]); });
  }
  EXPECT_EQ(n.load(), 300);
}

TEST(ThreadPool, PostedExceptionIsReportedAndPoolKeepsWorking) {
  ThreadPool pool(1);
  testing::internal::CaptureStderr();
  pool.post([] { throw std::runtime_error("boom in post"); });
  auto f = pool.submit([] { return 1; });
  EXPECT_EQ(f.result(5s), 1);
  pool.shutdown();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("boom in post"), std::string::npos) << err;
}

TEST(ThreadPool, ExceptionCrossesThreads) {
  ThreadPool pool(2);
  auto f = pool.submit([]() -> int { throw std::out_of_range("index 7 out of range"); });
  try {
    f.result(5s);
    FAIL() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "index 7 out of range");
  }
  EXPECT_NE(f.exception(5s), nullptr);
  EXPECT_TRUE(f.done());
}

TEST(ThreadPool, ResultTimeoutThenSuccess) {
  ThreadPool pool(1);
  Gate gate;
  auto f = pool.submit([&gate] {
    gate.wait();
    return 42;
  });
  EXPECT_THROW(f.result(10ms), TimeoutError);
  EXPECT_THROW(f.exception(1ms), TimeoutError);
  EXPECT_FALSE(f.wait_for(1ms));
  gate.open();
  EXPECT_EQ(f.result(10s), 42);
}

TEST(ThreadPool, CancelPendingFuture) {
  ThreadPool pool(1);
  Gate gate;
  std::atomic<bool> started{false};
  auto blocker = pool.submit([&] {
    started = true;
    gate.wait();
  });
  while (!started) std::this_thread::sleep_for(100us);
  EXPECT_TRUE(blocker.running());
  EXPECT_FALSE(blocker.cancel());  // running: cannot cancel
  std::atomic<bool> ran{false};
  auto pending = pool.submit([&ran] { ran = true; });
  EXPECT_FALSE(pending.running());
  EXPECT_TRUE(pending.cancel());
  EXPECT_TRUE(pending.cancelled());
  EXPECT_TRUE(pending.done());
  EXPECT_THROW(pending.result(), CancelledError);
  EXPECT_THROW(pending.exception(), CancelledError);
  gate.open();
  blocker.result(10s);
  pool.shutdown();
  EXPECT_FALSE(ran.load());  // the worker skipped the cancelled call
}

TEST(ThreadPool, DoneCallbacksBeforeAndAfterCompletion) {
  ThreadPool pool(2);
  Gate gate;
  auto f = pool.submit([&gate] {
    gate.wait();
    return 5;
  });
  // Added while pending: runs on the completing worker. As in Python, wait()
  // may return before it has run, so the test waits for the callback itself.
  celeriac::sync::Event ran;
  std::atomic<int> before{0};
  std::atomic<std::thread::id> cb_thread{};
  f.add_done_callback([&](Future<int> g) {
    cb_thread = std::this_thread::get_id();
    before = g.result();
    ran.set();
  });
  gate.open();
  ASSERT_TRUE(ran.wait_for(10s));
  EXPECT_EQ(before.load(), 5);
  EXPECT_NE(cb_thread.load(), std::this_thread::get_id());
  // Added after completion: runs at once, here, before add_done_callback
  // returns.
  f.wait();
  std::thread::id after_thread{};
  int after = 0;
  f.add_done_callback([&](Future<int> g) {
    after_thread = std::this_thread::get_id();
    after = g.result();
  });
  EXPECT_EQ(after, 5);
  EXPECT_EQ(after_thread, std::this_thread::get_id());
}

// Whoever sees done() and adds a callback must run it at once on its own
// thread, even while the completing thread is still running the callbacks
// added before (it used to slip into the completer's list and run later).
TEST(ThreadPool, CallbackAddedOnceDoneRunsAtOnceEvenWhileOthersRun) {
  ThreadPool pool(2);
  for (int round = 0; round < 200; ++round) {
    std::atomic<bool> release{false};
    celeriac::sync::Event slow_callback_done;
    Gate gate;  // the slow callback must be added while the task is pending
    auto f = pool.submit([round, &gate] {
      gate.wait();
      return round;
    });
    f.add_done_callback([&release, &slow_callback_done] {
      auto until = std::chrono::steady_clock::now() + 10s;
      while (!release.load() && std::chrono::steady_clock::now() < until) std::this_thread::yield();
      slow_callback_done.set();
    });
    gate.open();
    f.wait();  // sleeping on the future widens the window the old code had
    bool ran_here = false;
    f.add_done_callback([&ran_here] { ran_here = true; });
    EXPECT_TRUE(ran_here) << "round " << round;
    release = true;
    ASSERT_TRUE(slow_callback_done.wait_for(10s));
    if (!ran_here) break;
  }
}

TEST(ThreadPool, ThenChainsOnThePool) {
  ThreadPool pool(2);
  auto f = pool.submit([] { return 20; }).then(pool, [](int x) { return x + 1; }).then([](int x) {
    return x * 2;
  });
  EXPECT_EQ(f.result(5s), 42);
  // A continuation that returns a pool future is flattened.
  auto g = pool.submit([] { return 3; }).then([&pool](int x) {
    return pool.submit([x] { return x * 10; });
  });
  EXPECT_EQ(g.result(5s), 30);
  // Errors skip value continuations.
  auto h = pool.submit([]() -> int { throw std::logic_error("first"); }).then(pool, [](int x) {
    return x + 1;
  });
  EXPECT_THROW(h.result(5s), std::logic_error);
}

TEST(ThreadPool, ThenOnAShutDownPoolFailsWithBrokenExecutor) {
  ThreadPool pool(1);
  celeriac::Promise<int> p;
  auto f = p.get_future().then(pool, [](int x) { return x + 1; });
  pool.shutdown();
  p.set_value(1);  // the continuation is posted now, to a closed pool
  EXPECT_THROW(f.result(5s), BrokenExecutor);
}

TEST(ThreadPool, WhenAllAndAsCompletedOverPoolFutures) {
  ThreadPool pool(2);
  std::vector<Future<int>> fs;
  for (int i = 0; i < 20; ++i) fs.push_back(pool.submit([i] { return i * i; }));
  auto all = celeriac::when_all(fs).result(10s);
  ASSERT_EQ(all.size(), 20u);
  int seen = 0;
  for (auto& f : celeriac::as_completed(fs, 10s)) seen += f.result();
  int expect = 0;
  for (int i = 0; i < 20; ++i) expect += i * i;
  EXPECT_EQ(seen, expect);
}

TEST(ThreadPool, NestedSubmitAndWaitOnOneThreadPool) {
  ThreadPool pool(1);
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return 41; });
    return inner.result() + 1;  // the worker runs `inner` while waiting
  });
  EXPECT_EQ(outer.result(10s), 42);
}

namespace {
int depth_chain(ThreadPool& pool, int n) {
  if (n == 0) return 0;
  return pool.submit([&pool, n] { return depth_chain(pool, n - 1); }).result() + 1;
}
}  // namespace

TEST(ThreadPool, DeepRecursiveSubmitAndWaitOnOneThreadPool) {
  ThreadPool pool(1);
  auto f = pool.submit([&pool] { return depth_chain(pool, 200); });
  EXPECT_EQ(f.result(30s), 200);
}

TEST(ThreadPool, NestedWaitFromOutsideTaskOnOneThreadPool) {
  // A task waits for a task submitted from outside after it started.
  ThreadPool pool(1);
  std::atomic<bool> started{false};
  celeriac::Promise<Future<int>> handoff;
  auto hf = handoff.get_future();
  auto outer = pool.submit([&] {
    started = true;
    return hf.result(10s).result(10s) * 2;
  });
  while (!started) std::this_thread::sleep_for(100us);
  handoff.set_value(pool.submit([] { return 21; }));
  EXPECT_EQ(outer.result(20s), 42);
}

TEST(ThreadPool, SubmitAfterShutdownThrows) {
  ThreadPool pool(2);
  pool.shutdown();
  EXPECT_TRUE(pool.is_shutdown());
  EXPECT_FALSE(pool.broken());
  try {
    pool.submit([] { return 1; });
    FAIL() << "no exception";
  } catch (const BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("cannot schedule new futures after shutdown"),
              std::string::npos);
  }
  EXPECT_THROW(pool.post([] {}), BrokenExecutor);
  pool.shutdown();  // twice is harmless
}

TEST(ThreadPool, SubmitFromTaskAfterShutdownThrows) {
  ThreadPool pool(1);
  Gate gate;
  auto f = pool.submit([&] {
    gate.wait();
    pool.submit([] {});
  });
  std::thread stopper([&] { pool.shutdown(true); });
  while (!pool.is_shutdown()) std::this_thread::sleep_for(100us);
  gate.open();
  EXPECT_THROW(f.result(10s), BrokenExecutor);
  stopper.join();
}

TEST(ThreadPool, ShutdownWaitRunsPendingTasks) {
  std::atomic<int> n{0};
  ThreadPool pool(1);
  Gate gate;
  pool.post([&gate] { gate.wait(); });
  std::vector<Future<void>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit([&n] { n.fetch_add(1); }));
  std::thread opener([&] {
    std::this_thread::sleep_for(5ms);
    gate.open();
  });
  pool.shutdown(true, false);
  opener.join();
  EXPECT_EQ(n.load(), 50);
  for (auto& f : fs) {
    EXPECT_TRUE(f.done());
    EXPECT_FALSE(f.cancelled());
  }
}

TEST(ThreadPool, ShutdownCancelFuturesCancelsPending) {
  std::atomic<int> n{0};
  ThreadPool pool(1);
  Gate gate;
  std::atomic<bool> started{false};
  auto running = pool.submit([&] {
    started = true;
    gate.wait();
    return 1;
  });
  while (!started) std::this_thread::sleep_for(100us);
  std::vector<Future<void>> fs;
  for (int i = 0; i < 50; ++i) fs.push_back(pool.submit([&n] { n.fetch_add(1); }));
  pool.shutdown(false, true);
  for (auto& f : fs) {
    EXPECT_TRUE(f.cancelled());
    EXPECT_THROW(f.result(), CancelledError);
  }
  gate.open();
  EXPECT_EQ(running.result(10s), 1);  // the running one finishes normally
  pool.shutdown(true);
  EXPECT_EQ(n.load(), 0);
}

TEST(ThreadPool, ShutdownWithoutWaitReturnsAndDestructorJoins) {
  std::atomic<int> n{0};
  {
    ThreadPool pool(2);
    for (int i = 0; i < 100; ++i)
      pool.post([&n] {
        std::this_thread::sleep_for(10us);
        n.fetch_add(1);
      });
    pool.shutdown(false);
    EXPECT_THROW(pool.post([] {}), BrokenExecutor);
  }
  EXPECT_EQ(n.load(), 100);
}

TEST(ThreadPool, ShutdownWaitFromOwnThreadIsAnError) {
  ThreadPool pool(1);
  auto f = pool.submit([&pool] { pool.shutdown(true); });
  EXPECT_THROW(f.result(5s), celeriac::InvalidStateError);
  auto g = pool.submit([&pool] { pool.shutdown(false); });
  g.result(5s);
  EXPECT_TRUE(pool.is_shutdown());
}

TEST(ThreadPool, InitializerRunsOncePerWorker) {
  std::mutex mu;
  std::multiset<std::thread::id> ids;
  std::set<std::thread::id> task_ids;
  {
    ThreadPool pool(3, [&] {
      std::lock_guard lock(mu);
      ids.insert(std::this_thread::get_id());
    });
    std::vector<Future<std::thread::id>> fs;
    for (int i = 0; i < 100; ++i)
      fs.push_back(pool.submit([] { return std::this_thread::get_id(); }));
    for (auto& f : fs) task_ids.insert(f.result(5s));
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(std::set<std::thread::id>(ids.begin(), ids.end()).size(), 3u);
  for (auto id : task_ids) EXPECT_EQ(ids.count(id), 1u);  // tasks ran on initialised threads
}

TEST(ThreadPool, FailingInitializerBreaksThePool) {
  ThreadPool pool(2, [] { throw std::runtime_error("no database"); });
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!pool.broken() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(100us);
  ASSERT_TRUE(pool.broken());
  EXPECT_TRUE(pool.is_shutdown());
  try {
    pool.submit([] { return 1; });
    FAIL() << "no exception";
  } catch (const BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("initializer failed"), std::string::npos) << e.what();
  }
}

// A worker whose initializer fails while the pool is being destroyed must not
// deadlock the destructor (it used to wait for a lock the joining thread held).
TEST(ThreadPool, InitializerFailingDuringShutdownDoesNotDeadlock) {
  Gate late;
  std::atomic<int> calls{0};
  std::thread opener;
  {
    ThreadPool pool(2, [&] {
      if (calls.fetch_add(1) == 1) late.wait();  // the second worker fails later
      throw std::runtime_error("no database");
    });
    auto until = std::chrono::steady_clock::now() + 10s;
    while (!pool.broken() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100us);
    ASSERT_TRUE(pool.broken());
    // Let the second initializer fail while the destructor joins it.
    opener = std::thread([&late] {
      std::this_thread::sleep_for(20ms);
      late.open();
    });
  }
  opener.join();
  EXPECT_EQ(calls.load(), 2);
}

TEST(ThreadPool, FailingInitializerFailsPendingFutures) {
  Gate gate;
  ThreadPool pool(1, [&gate] {
    gate.wait();
    throw std::runtime_error("init failed late");
  });
  // Submitted while the only worker is still initialising.
  auto f = pool.submit([] { return 1; });
  gate.open();
  try {
    f.result(10s);
    FAIL() << "no exception";
  } catch (const BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("init failed late"), std::string::npos) << e.what();
  }
}

TEST(ThreadPool, WorkersAreNamedAndKnowTheirIndex) {
  ThreadPool pool(2);
  EXPECT_FALSE(pool.running_in_this_thread());
  EXPECT_EQ(pool.worker_index(), -1);
  auto f = pool.submit([&pool] {
    return std::make_pair(celeriac::sync::current_thread_name(), pool.worker_index());
  });
  auto [name, index] = f.result(5s);
  EXPECT_EQ(name.rfind("celeriac-pool-", 0), 0u) << name;
  EXPECT_GE(index, 0);
  EXPECT_LT(index, 2);
  EXPECT_TRUE(pool.submit([&pool] { return pool.running_in_this_thread(); }).result(5s));
}

TEST(ThreadPool, AliasIsTheSameType) {
  static_assert(std::is_same_v<ThreadPoolExecutor, ThreadPool>);
  static_assert(celeriac::Executor<ThreadPool>);
  ThreadPoolExecutor ex(2);
  EXPECT_EQ(ex.submit([] { return 3; }).result(5s), 3);
}

TEST(ThreadPool, StressManyProducers) {
  constexpr int kProducers = 6;
  constexpr int kPerProducer = 20000;
  std::atomic<long> sum{0};
  std::atomic<int> posted_from_tasks{0};
  {
    ThreadPool pool(3);
    std::vector<std::thread> producers;
    std::vector<std::vector<Future<int>>> futures(kProducers);
    for (int p = 0; p < kProducers; ++p) {
      producers.emplace_back([&, p] {
        for (int i = 0; i < kPerProducer; ++i) {
          if (i % 4 == 0) {
            futures[p].push_back(pool.submit([i] { return i; }));
          } else if (i % 4 == 1) {
            // Tasks that submit from inside the pool (own deque + stealing).
            pool.post([&pool, &sum, &posted_from_tasks] {
              pool.post([&sum, &posted_from_tasks] {
                posted_from_tasks.fetch_add(1);
                sum.fetch_add(1);
              });
            });
          } else {
            pool.post([&sum] { sum.fetch_add(1); });
          }
        }
      });
    }
    for (auto& t : producers) t.join();
    long fsum = 0;
    for (auto& v : futures)
      for (auto& f : v) fsum += f.result(30s);
    long expect_f = 0;
    for (int i = 0; i < kPerProducer; i += 4) expect_f += i;
    EXPECT_EQ(fsum, expect_f * kProducers);
    // A task that posts after shutdown() is refused (Python's rule, see
    // SubmitFromTaskAfterShutdownThrows), so the nested posts must all have
    // landed before the pool's destructor shuts it down.
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (posted_from_tasks.load() < kProducers * kPerProducer / 4 &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(posted_from_tasks.load(), kProducers * kPerProducer / 4);
  EXPECT_EQ(sum.load(), static_cast<long>(kProducers) * kPerProducer * 3 / 4);
}

TEST(ThreadPool, StressShutdownRacingSubmitters) {
  // Every submit either throws BrokenExecutor or its task runs: nothing is
  // lost between the two.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> accepted{0}, ran{0};
    {
      ThreadPool pool(2);
      std::vector<std::thread> producers;
      for (int p = 0; p < 3; ++p) {
        producers.emplace_back([&] {
          for (int i = 0; i < 2000; ++i) {
            try {
              pool.post([&ran] { ran.fetch_add(1); });
              accepted.fetch_add(1);
            } catch (const BrokenExecutor&) {
              return;
            }
          }
        });
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50 * round));
      pool.shutdown(true);
      int after_shutdown = ran.load();
      for (auto& t : producers) t.join();
      EXPECT_EQ(after_shutdown, accepted.load()) << "round " << round;
    }
    EXPECT_EQ(ran.load(), accepted.load());
  }
}

TEST(ThreadPool, OverflowBeyondTheRingKeepsEverything) {
  // More outside posts than the injection ring holds while workers are busy.
  std::atomic<int> n{0};
  ThreadPool pool(1);
  Gate gate;
  pool.post([&gate] { gate.wait(); });
  for (int i = 0; i < 20000; ++i) pool.post([&n] { n.fetch_add(1); });
  gate.open();
  pool.shutdown(true);
  EXPECT_EQ(n.load(), 20000);
}

TEST(ThreadPool, IdlePoolSleeps) {
  // After the spin phase every worker sleeps (idle_workers counts them).
  ThreadPool pool(2);
  pool.submit([] {}).result(5s);
  auto until = std::chrono::steady_clock::now() + 10s;
  while (pool.idle_workers() != 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(pool.idle_workers(), 2u);
  EXPECT_EQ(pool.submit([] { return 8; }).result(5s), 8);  // and wakes up
}
