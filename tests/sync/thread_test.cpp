// Thread naming and the Thread class (Python's threading.Thread).
#include "celeriac/sync/thread.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "celeriac/error.hpp"
#include "celeriac/sync/thread_name.hpp"

using namespace std::chrono_literals;
using celeriac::InvalidStateError;
using celeriac::sync::current_thread_name;
using celeriac::sync::Event;
using celeriac::sync::kMaxThreadNameLength;
using celeriac::sync::set_current_thread_name;
using celeriac::sync::Thread;

namespace {

// The name the kernel shows for thread `tid` of this process (what top -H reads).
std::string kernel_name_of(pid_t tid) {
  std::ifstream comm("/proc/self/task/" + std::to_string(tid) + "/comm");
  std::string name;
  std::getline(comm, name);
  return name;
}

}  // namespace

TEST(ThreadName, SetAndGetOnTheCallingThread) {
  std::jthread t([] {
    EXPECT_EQ(set_current_thread_name("celeriac-io"), "celeriac-io");
    EXPECT_EQ(current_thread_name(), "celeriac-io");
    EXPECT_EQ(kernel_name_of(static_cast<pid_t>(::gettid())), "celeriac-io");
  });
}

TEST(ThreadName, LongNamesAreTruncatedToFifteenBytes) {
  std::jthread t([] {
    EXPECT_EQ(set_current_thread_name("a-rather-long-thread-name"), "a-rather-long-t");
    EXPECT_EQ(current_thread_name(), "a-rather-long-t");
    EXPECT_EQ(current_thread_name().size(), kMaxThreadNameLength);
  });
}

TEST(ThreadName, TruncationKeepsUtf8Whole) {
  std::jthread t([] {
    // 14 ASCII bytes then "é" (2 bytes): cutting at 15 would split the "é".
    EXPECT_EQ(set_current_thread_name("abcdefghijklmn\xC3\xA9z"), "abcdefghijklmn");
    EXPECT_EQ(set_current_thread_name("abcdefghijklm\xC3\xA9z"), "abcdefghijklm\xC3\xA9");
    EXPECT_EQ(set_current_thread_name(""), "");
  });
}

TEST(Thread, RunsTheTargetUnderItsName) {
  std::string seen_name;
  pid_t seen_tid = 0;
  std::string kernel_name;
  Thread t(
      [&] {
        seen_name = current_thread_name();
        seen_tid = static_cast<pid_t>(::gettid());
        kernel_name = kernel_name_of(seen_tid);
      },
      "worker");
  EXPECT_FALSE(t.started());
  EXPECT_FALSE(t.is_alive());
  EXPECT_EQ(t.ident(), std::thread::id());
  EXPECT_EQ(t.native_id(), 0);
  t.start();
  EXPECT_TRUE(t.started());
  EXPECT_NE(t.ident(), std::thread::id());
  EXPECT_NE(t.native_id(), 0);
  const std::thread::id ident = t.ident();
  t.join();
  EXPECT_FALSE(t.is_alive());
  EXPECT_EQ(t.ident(), ident) << "ident outlives the thread, as in Python";
  EXPECT_EQ(t.name(), "worker");
  EXPECT_EQ(seen_name, "worker");
  EXPECT_EQ(kernel_name, "worker");
  EXPECT_EQ(seen_tid, t.native_id());
  EXPECT_EQ(t.exception(), nullptr);
}

TEST(Thread, DefaultNamesFollowPython) {
  Thread a([] {});
  Thread b([] {});
  // "Thread-<N>" (std::regex would draw g++ 12's -Wmaybe-uninitialized
  // false positives from libstdc++ in sanitizer builds).
  auto python_default = [](const std::string& name) {
    const std::string prefix = "Thread-";
    return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 &&
           name.find_first_not_of("0123456789", prefix.size()) == std::string::npos;
  };
  EXPECT_TRUE(python_default(a.name())) << a.name();
  EXPECT_TRUE(python_default(b.name())) << b.name();
  EXPECT_NE(a.name(), b.name());
}

TEST(Thread, LongNameIsKeptWholeButTruncatedForTheOs) {
  std::string os_name;
  Thread t([&] { os_name = current_thread_name(); }, "celeriac-worker-0001");
  t.start();
  t.join();
  EXPECT_EQ(t.name(), "celeriac-worker-0001");
  EXPECT_EQ(os_name, "celeriac-worker");
}

TEST(Thread, MisuseIsReported) {
  Thread t([] {}, "misused");
  try {
    t.join();
    FAIL() << "join before start must throw";
  } catch (const InvalidStateError& e) {
    EXPECT_NE(std::string(e.what()).find("'misused' was never started"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)t.join_for(1ms), InvalidStateError);
  t.start();
  EXPECT_THROW(t.start(), InvalidStateError);
  t.join();
  t.join();  // joining twice is fine
  EXPECT_TRUE(t.join_for(0ms));
}

TEST(Thread, JoiningItselfIsAnError) {
  Thread* self = nullptr;
  bool refused = false;
  Event go;
  Thread t(
      [&] {
        go.wait();
        try {
          self->join();
        } catch (const InvalidStateError& e) {
          refused = std::string(e.what()).find("cannot join itself") != std::string::npos;
        }
      },
      "selfjoin");
  self = &t;
  t.start();
  go.set();
  t.join();
  EXPECT_TRUE(refused);
}

TEST(Thread, JoinWithTimeout) {
  Event release;
  Thread t([&] { release.wait(); }, "blocked");
  t.start();
  EXPECT_FALSE(t.join_for(10ms));
  EXPECT_FALSE(t.join_until(std::chrono::system_clock::now() + 10ms));
  EXPECT_TRUE(t.is_alive());
  release.set();
  EXPECT_TRUE(t.join_for(60s));
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, EscapedExceptionIsReportedAndKept) {
  testing::internal::CaptureStderr();
  Thread t([] { throw std::runtime_error("boom"); }, "failing");
  t.start();
  t.join();
  const std::string printed = testing::internal::GetCapturedStderr();
  EXPECT_NE(printed.find("Exception in thread failing: boom"), std::string::npos) << printed;
  ASSERT_NE(t.exception(), nullptr);
  EXPECT_THROW(std::rethrow_exception(t.exception()), std::runtime_error);
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, DestructorJoins) {
  std::atomic<bool> finished{false};
  {
    Thread t(
        [&] {
          std::this_thread::sleep_for(20ms);
          finished = true;
        },
        "joined-on-exit");
    t.start();
  }
  EXPECT_TRUE(finished.load());
  Thread never_started([] {});  // destroying an unstarted Thread is fine
}

TEST(Thread, MoveOnlyTargetAndMoves) {
  auto value = std::make_unique<int>(41);
  int result = 0;
  Thread t([v = std::move(value), &result] { result = *v + 1; }, "moveonly");
  Thread moved(std::move(t));
  EXPECT_THROW(t.start(), InvalidStateError);  // NOLINT(bugprone-use-after-move): moved-from
  EXPECT_THROW((void)t.name(), InvalidStateError);
  moved.start();
  moved.join();
  EXPECT_EQ(result, 42);
}

TEST(Thread, MoveAssignmentJoinsTheThreadItReplaces) {
  std::atomic<bool> first_done{false};
  Thread t(
      [&] {
        std::this_thread::sleep_for(20ms);
        first_done = true;
      },
      "first");
  t.start();
  t = Thread([] {}, "second");
  EXPECT_TRUE(first_done.load());
  EXPECT_EQ(t.name(), "second");
  EXPECT_FALSE(t.started());
}

TEST(Thread, DestroyedByItsOwnTargetDetachesSafely) {
  Event done;
  auto holder = std::make_unique<std::unique_ptr<Thread>>();
  auto* slot = holder.get();
  *slot = std::make_unique<Thread>(
      [slot, &done] {
        slot->reset();  // the Thread object dies while its thread still runs
        done.set();
      },
      "self-destroy");
  (*slot)->start();
  EXPECT_TRUE(done.wait_for(60s));
}
