#include <dlfcn.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

// ASan and TSan replace malloc: an impossible allocation is reported and the
// process dies instead of std::bad_alloc being thrown.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MP_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MP_SANITIZER_ALLOCATOR 1
#endif
#endif

int add(int a, int b) {
  return a + b;
}
int my_pid() {
  return static_cast<int>(::getpid());
}
int crash_segv() {
  std::signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn it into exit(1)
  std::raise(SIGSEGV);
  return 0;
}
int crash_abort() {
  std::abort();
}
int crash_exit3() {
  std::_Exit(3);
}
int throw_bad_alloc() {
  throw std::bad_alloc();
}
std::size_t allocate_too_much() {
  std::vector<char> v;
  v.reserve(v.max_size() + 1);  // std::length_error
  return v.capacity();
}
std::size_t allocate_huge() {
  auto* p = new char[(std::size_t{1} << 46)];  // 64 TiB: the allocation fails
  std::size_t r = reinterpret_cast<std::uintptr_t>(p) & 1;
  delete[] p;
  return r;
}
int hang() {
  ::sleep(60);
  return 0;
}
int sleep_ms(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
struct MyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
int throw_custom(std::string msg) {
  throw MyError(msg);
}
int throw_invalid(std::string msg) {
  throw std::invalid_argument(msg);
}

int g_init_value = 0;
void set_init(int v) {
  g_init_value = v;
}
int get_init() {
  return g_init_value;
}
void failing_init() {
  throw std::runtime_error("no database");
}
void crashing_init() {
  std::signal(SIGSEGV, SIG_DFL);
  std::raise(SIGSEGV);
}
// Marks the shared flag: proves whether a task ran at all.
int mark(mp::SharedArray<int> flag) {
  flag[0] = 1;
  return 1;
}
// Blocks until the parent sends a value through the pipe, returns it.
int wait_for_go(mp::Connection c) {
  return c.recv<int>(std::chrono::seconds(10));
}

TEST(ProcessPool, SubmitReturnsTheResult) {
  mp::ProcessPool pool(2);
  EXPECT_EQ(pool.max_workers(), 2u);
  EXPECT_EQ(pool.submit(&add, 2, 3).result(), 5);
  auto f =
      pool.submit([](std::string s, std::vector<int> v) { return s + std::to_string(v.size()); },
                  std::string("n="), std::vector<int>{1, 2, 3});
  EXPECT_EQ(f.result(5s), "n=3");
  auto pid = pool.submit(&my_pid).result();
  EXPECT_NE(pid, ::getpid());
}

TEST(ProcessPool, VoidTaskCompletes) {
  mp::ProcessPool pool(1);
  auto f = pool.submit([](int) {}, 1);
  f.result(5s);
  EXPECT_TRUE(f.done());
}

TEST(ProcessPool, SegfaultFailsOnlyThatTask) {
  mp::ProcessPool pool(2);
  auto bad = pool.submit(&crash_segv);
  try {
    bad.result(10s);
    FAIL() << "expected WorkerDiedError";
  } catch (const mp::WorkerDiedError& e) {
    EXPECT_EQ(e.signal(), SIGSEGV);
    std::string what = e.what();
    EXPECT_NE(what.find("signal 11 (SIGSEGV)"), std::string::npos) << what;
    EXPECT_NE(what.find("crash_segv"), std::string::npos) << what;
    EXPECT_NE(what.find("worker pid " + std::to_string(e.pid())), std::string::npos) << what;
  }
  // The pool replaced the worker and keeps serving.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(pool.submit(&add, i, i).result(10s), 2 * i);
  EXPECT_EQ(pool.pids().size(), 2u);
}

TEST(ProcessPool, AbortAndExitNameTheirCause) {
  mp::ProcessPool pool(2);
  auto a = pool.submit(&crash_abort);
  auto x = pool.submit(&crash_exit3);
  auto ok = pool.submit(&add, 1, 1);
  try {
    a.result(10s);
    FAIL();
  } catch (const mp::WorkerDiedError& e) {
    EXPECT_EQ(e.signal(), SIGABRT);
    EXPECT_NE(std::string(e.what()).find("SIGABRT"), std::string::npos) << e.what();
  }
  try {
    x.result(10s);
    FAIL();
  } catch (const mp::WorkerDiedError& e) {
    EXPECT_EQ(e.signal(), 0);
    EXPECT_EQ(e.exit_code(), 3);
    EXPECT_NE(std::string(e.what()).find("exit code 3"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ok.result(10s), 2);
}

TEST(ProcessPool, FailedAllocationsArriveAsExceptions) {
  mp::ProcessPool pool(1);
  EXPECT_THROW(pool.submit(&throw_bad_alloc).result(10s), std::bad_alloc);
  EXPECT_THROW(pool.submit(&allocate_too_much).result(10s), std::length_error);
#ifdef MP_SANITIZER_ALLOCATOR
  // The sanitizer reports the impossible allocation and kills the child.
  EXPECT_THROW(pool.submit(&allocate_huge).result(10s), mp::WorkerDiedError);
#else
  EXPECT_THROW(pool.submit(&allocate_huge).result(10s), std::bad_alloc);
#endif
  EXPECT_EQ(pool.submit(&add, 1, 2).result(10s), 3);
}

TEST(ProcessPool, ExceptionsKeepTypeAndMessage) {
  mp::ProcessPool pool(1);
  try {
    pool.submit(&throw_invalid, std::string("bad input 42")).result(10s);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "bad input 42");
  }
  try {
    pool.submit(&throw_custom, std::string("custom boom")).result(10s);
    FAIL();
  } catch (const mp::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "MyError");
    EXPECT_EQ(e.message(), "custom boom");
    EXPECT_STREQ(e.what(), "MyError: custom boom");
  }
}

TEST(ProcessPool, TimeoutKillsAndReplacesTheWorker) {
  mp::ProcessPool pool(1);
  EXPECT_EQ(pool.submit(&add, 1, 1).result(10s), 2);
  auto before = pool.pids();
  ASSERT_EQ(before.size(), 1u);
  mp::TaskOptions o;
  o.timeout = 200ms;
  auto f = pool.submit_with(o, &hang);
  auto next = pool.submit(&add, 2, 2);  // queued behind the hanging task
  try {
    f.result(10s);
    FAIL();
  } catch (const TimeoutError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("hang"), std::string::npos) << what;
    EXPECT_NE(what.find("200 ms"), std::string::npos) << what;
  }
  EXPECT_EQ(next.result(10s), 4);
  EXPECT_NE(pool.pids(), before);
}

TEST(ProcessPool, DefaultTaskTimeoutAppliesToEveryTask) {
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.task_timeout = 300ms;
  mp::ProcessPool pool(std::move(o));
  EXPECT_EQ(pool.submit(&sleep_ms, 10).result(10s), 10);
  EXPECT_THROW(pool.submit(&sleep_ms, 5000).result(10s), TimeoutError);
  EXPECT_EQ(pool.submit(&add, 1, 1).result(10s), 2);
}

TEST(ProcessPool, MaxTasksPerChildRecyclesWorkers) {
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.max_tasks_per_child = 2;
  mp::ProcessPool pool(std::move(o));
  std::vector<int> pids;
  for (int i = 0; i < 6; ++i) pids.push_back(pool.submit(&my_pid).result(10s));
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
  EXPECT_NE(pids[3], pids[4]);
  EXPECT_EQ(std::set<int>(pids.begin(), pids.end()).size(), 3u);
}

// The child's own peak resident set (KiB), as the pool reads it.
long peak_rss_kib_self() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  char line[256];
  long kib = -1;
  while (f && std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atol(line + 6);
  if (f) std::fclose(f);
  return kib;
}
// Touches `mib` MiB (freed before returning: only the peak stays) and returns the pid.
int touch_mib(int mib) {
  std::vector<char> v(static_cast<std::size_t>(mib) << 20);
  std::memset(v.data(), 1, v.size());
  return v[v.size() / 2] == 1 ? my_pid() : -1;
}

TEST(ProcessPool, MaxMemoryPerChildReplacesAWorkerAfterTheTaskThatWentOver) {
  // A generous deadline: under a sanitizer on a loaded machine, touching
  // 40 MiB and forking a replacement take seconds.
  constexpr auto kGenerous = 50s;  // under the ctest timeout (60 s)
  long fresh;
  {
    mp::ProcessPool probe(1);
    fresh = probe.submit(&peak_rss_kib_self).result(kGenerous);
  }
  ASSERT_GT(fresh, 0);
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.max_memory_per_child = static_cast<std::size_t>(fresh) + 24 * 1024;
  mp::ProcessPool pool(std::move(o));
  int a = pool.submit(&my_pid).result(kGenerous);
  EXPECT_EQ(pool.submit(&my_pid).result(kGenerous), a) << "under the limit: the child stays";
  EXPECT_EQ(pool.submit(&touch_mib, 40).result(kGenerous), a)
      << "the task that goes over completes";
  int b = pool.submit(&my_pid).result(kGenerous);
  EXPECT_NE(b, a) << "the child over the limit was replaced";
  EXPECT_EQ(pool.submit(&my_pid).result(kGenerous), b);
}

TEST(ProcessPool, InitializerRunsInEveryWorker) {
  mp::ProcessPoolOptions o;
  o.max_workers = 2;
  o.initializer = mp::Call(&set_init, 77);
  mp::ProcessPool pool(std::move(o));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(pool.submit(&get_init).result(10s), 77);
  EXPECT_EQ(g_init_value, 0);  // not in the parent
}

TEST(ProcessPool, WorkersStartWithTheFirstSubmit) {
  mp::ProcessPool pool(2);
  EXPECT_TRUE(pool.pids().empty());
  EXPECT_EQ(pool.submit(&add, 1, 1).result(10s), 2);
  EXPECT_EQ(pool.pids().size(), 2u);
}

// The first submit always returns a future (workers start with it), the
// future fails with the initializer's error, and the task never ran.
TEST(ProcessPool, FailingInitializerBreaksThePool) {
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.initializer = mp::Call(&failing_init);
  mp::ProcessPool pool(std::move(o));
  mp::SharedArray<int> flag(1);
  auto f = pool.submit(&mark, flag);
  try {
    f.result(10s);
    FAIL();
  } catch (const BrokenExecutor& e) {
    EXPECT_NE(std::string(e.what()).find("no database"), std::string::npos) << e.what();
  }
  EXPECT_THROW(pool.submit(&add, 1, 1), BrokenExecutor);
  pool.shutdown();  // reaps the worker: it can no longer run anything
  EXPECT_EQ(flag[0], 0) << "a task ran in a worker whose initializer failed";
}

TEST(ProcessPool, InitializerThatCrashesBreaksThePool) {
  mp::ProcessPoolOptions o;
  o.max_workers = 2;
  o.initializer = mp::Call(&crashing_init);
  mp::ProcessPool pool(std::move(o));
  try {
    pool.submit(&add, 1, 1).result(10s);
    FAIL();
  } catch (const BrokenExecutor& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("SIGSEGV"), std::string::npos) << what;
    EXPECT_NE(what.find("initializer"), std::string::npos) << what;
  }
  EXPECT_THROW(pool.submit(&add, 1, 1), BrokenExecutor);
}

TEST(ProcessPool, ManyThreadsSubmitAtOnce) {
  mp::ProcessPool pool(2);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      std::vector<Future<int>> fs;
      for (int i = 0; i < 200; ++i) fs.push_back(pool.submit(&add, t, i));
      for (int i = 0; i < 200; ++i)
        if (fs[static_cast<std::size_t>(i)].result(30s) != t + i) ++wrong;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

// Auto prefetch sends small tasks in batches, but never queues work behind a
// task that has been running for a while: another worker takes it.
TEST(ProcessPool, NothingWaitsBehindALongTask) {
  mp::ProcessPool pool(2);
  for (int i = 0; i < 50; ++i) ASSERT_EQ(pool.submit(&add, i, 1).result(10s), i + 1);
  auto [mine, theirs] = mp::Pipe();
  auto blocker = pool.submit(&wait_for_go, theirs);
  theirs.close();
  std::this_thread::sleep_for(20ms);  // the blocker is now "running for a while"
  std::vector<Future<int>> small;
  for (int i = 0; i < 40; ++i) small.push_back(pool.submit(&add, i, 0));
  for (int i = 0; i < 40; ++i) EXPECT_EQ(small[static_cast<std::size_t>(i)].result(10s), i);
  EXPECT_FALSE(blocker.done());
  mine.send(7);
  EXPECT_EQ(blocker.result(10s), 7);
}

TEST(ProcessPool, MapKeepsOrderWithAndWithoutChunks) {
  mp::ProcessPool pool(2);
  std::vector<int> in(1000);
  for (int i = 0; i < 1000; ++i) in[static_cast<std::size_t>(i)] = i;
  for (std::size_t chunk : {1u, 7u, 1000u, 5000u}) {
    auto out = pool.map([](int x) { return x * 3; }, in, chunk).to_vector();
    ASSERT_EQ(out.size(), in.size());
    for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], in[i] * 3);
  }
  EXPECT_THROW(pool.map([](int x) { return x; }, in, 0), std::invalid_argument);
  auto empty = pool.map([](int x) { return x; }, std::vector<int>{}, 4).to_vector();
  EXPECT_TRUE(empty.empty());
}

TEST(ProcessPool, MapRethrowsAtTheFailingElement) {
  mp::ProcessPool pool(2);
  std::vector<int> in{1, 2, 3, 0, 5};
  auto results = pool.map(
      [](int x) {
        if (x == 0) throw std::domain_error("zero");
        return 10 / x;
      },
      in, 2);
  std::vector<int> seen;
  try {
    for (int v : results) seen.push_back(v);
    FAIL();
  } catch (const std::domain_error& e) {
    EXPECT_STREQ(e.what(), "zero");
  }
  EXPECT_EQ(seen, (std::vector<int>{10, 5}));  // the chunk {3, 0} fails as a whole
}

TEST(ProcessPool, MapTimeout) {
  mp::ProcessPool pool(1);
  auto results = pool.map(&sleep_ms, std::vector<int>{600}, 1, 50ms);
  EXPECT_THROW(results.to_vector(), TimeoutError);
}

TEST(ProcessPool, ShutdownRejectsNewWorkAndReapsWorkers) {
  mp::ProcessPool pool(2);
  auto f = pool.submit(&sleep_ms, 50);
  auto pids = pool.pids();
  pool.shutdown();
  EXPECT_EQ(f.result(1s), 50);  // wait=true finished the submitted work
  EXPECT_THROW(pool.submit(&add, 1, 1), BrokenExecutor);
  for (pid_t p : pids) {
    // Reaped by the fork server: the pid no longer exists (not even a zombie).
    EXPECT_EQ(::kill(p, 0), -1) << p;
  }
}

// shutdown(wait=false) returns while a task still runs (it is blocked on a
// pipe only this thread can feed); the task then finishes normally.
TEST(ProcessPool, ShutdownWithoutWaitingLetsRunningTasksFinish) {
  mp::ProcessPool pool(1);
  auto [mine, theirs] = mp::Pipe();
  auto f = pool.submit(&wait_for_go, theirs);
  theirs.close();
  pool.shutdown(false);
  EXPECT_THROW(pool.submit(&add, 1, 1), BrokenExecutor);
  EXPECT_FALSE(f.done());
  mine.send(41);
  EXPECT_EQ(f.result(10s), 41);
}

TEST(ProcessPool, ShutdownCancelsQueuedFutures) {
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.prefetch = 1;
  mp::ProcessPool pool(std::move(o));
  auto running = pool.submit(&sleep_ms, 200);
  std::vector<Future<int>> queued;
  for (int i = 0; i < 5; ++i) queued.push_back(pool.submit(&add, i, 0));
  pool.shutdown(true, true);
  EXPECT_EQ(running.result(1s), 200);
  for (auto& q : queued) EXPECT_TRUE(q.cancelled());
}

TEST(ProcessPool, CancelWhileQueued) {
  mp::ProcessPoolOptions o;
  o.max_workers = 1;
  o.prefetch = 1;
  mp::ProcessPool pool(std::move(o));
  auto running = pool.submit(&sleep_ms, 200);
  auto queued = pool.submit(&add, 1, 1);
  EXPECT_TRUE(queued.cancel());
  EXPECT_THROW(queued.result(1s), CancelledError);
  EXPECT_EQ(running.result(5s), 200);
  EXPECT_EQ(pool.submit(&add, 2, 1).result(5s), 3);
}

TEST(ProcessPool, LargeArraysGoThroughSharedMemory) {
  mp::ProcessPool pool(2);
  mp::SharedArray<double> a(4 << 20);  // 32 MB
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<double>(i);
  auto sum = pool.submit(
                     [](mp::SharedArray<double> arr) {
                       double s = 0;
                       for (auto& x : arr) {
                         s += x;
                         x *= 2;
                       }
                       return s;
                     },
                     a)
                 .result(30s);
  double n = static_cast<double>(a.size());
  EXPECT_DOUBLE_EQ(sum, n * (n - 1) / 2);
  EXPECT_EQ(a[12345], 2 * 12345.0);  // the child wrote the parent's pages
  // A task may also return an array (the same block comes back as the same mapping).
  auto back = pool.submit([](mp::SharedArray<double> arr) { return arr; }, a).result(30s);
  EXPECT_EQ(back.data(), a.data());
  auto made = pool.submit(
                      [](int n) {
                        mp::SharedArray<int> r(static_cast<std::size_t>(n));
                        for (int i = 0; i < n; ++i) r[static_cast<std::size_t>(i)] = i * i;
                        return r;
                      },
                      1000)
                  .result(30s);
  ASSERT_EQ(made.size(), 1000u);
  EXPECT_EQ(made[999], 999 * 999);
}

std::vector<std::uint8_t> reversed(std::vector<std::uint8_t> v, mp::SharedArray<int> seen) {
  seen[0] = static_cast<int>(v.size() >> 20);
  std::reverse(v.begin(), v.end());
  return v;
}
int exit_with_size_in_mb(std::string s) {
  return static_cast<int>(s.size() >> 20);
}

// Big values by value (past the size where they travel through a memfd
// instead of the socket) arrive intact in both directions, alongside
// descriptors the same message carries.
TEST(ProcessPool, LargeValuesByValue) {
  mp::ProcessPool pool(1);
  std::vector<std::uint8_t> v((std::size_t{3} << 20) + 5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  mp::SharedArray<int> seen(1);
  auto back = pool.submit(&reversed, v, seen).result(30s);
  ASSERT_EQ(back.size(), v.size());
  EXPECT_TRUE(std::equal(v.rbegin(), v.rend(), back.begin()));
  EXPECT_EQ(seen[0], 3);
  std::string s(std::size_t{2} << 20, 'q');
  EXPECT_EQ(pool.submit(&exit_with_size_in_mb, s).result(30s), 2);
  EXPECT_EQ(pool.submit(&add, 1, 1).result(10s), 2);  // small ones still inline
}

// A function pointer from a library loaded after the fork server started has
// no code in the child: a clear error instead of a crash in the worker.
TEST(ProcessPool, CodeMissingInTheChildIsAClearError) {
  mp::ProcessPool pool(1);
  EXPECT_EQ(pool.submit(&add, 1, 1).result(10s), 2);  // the fork server runs
  void* lib = ::dlopen(MP_LATE_LIB, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(lib, nullptr) << ::dlerror();
  auto late_square = reinterpret_cast<int (*)(int)>(::dlsym(lib, "late_square"));
  ASSERT_NE(late_square, nullptr);
  EXPECT_EQ(late_square(4), 16);  // fine here
  try {
    pool.submit(late_square, 4).result(10s);
    FAIL() << "expected SerializationError";
  } catch (const mp::SerializationError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("does not exist in the child process"), std::string::npos) << what;
    EXPECT_NE(what.find("mp::init()"), std::string::npos) << what;
  }
  EXPECT_EQ(pool.submit(&add, 2, 2).result(10s), 4);  // the worker survived
  ::dlclose(lib);
}

TEST(ProcessPool, FutureCallbacksAndThenWork) {
  mp::ProcessPool pool(1);
  std::atomic<int> seen{0};
  auto f = pool.submit(&add, 20, 1);
  f.add_done_callback([&](Future<int> g) { seen = g.result(); });
  auto doubled = f.then([](int v) { return v * 2; });
  EXPECT_EQ(doubled.result(5s), 42);
  f.wait();
  for (int i = 0; i < 100 && seen.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(seen.load(), 21);
}
