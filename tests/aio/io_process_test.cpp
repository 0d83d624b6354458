// Subprocesses (create_subprocess_exec): pipes as streams, communicate()
// with big inputs and outputs, exit statuses, kill/terminate, a child that
// exits without reading its input, several waiters, cancellation of wait(),
// a two-process pipeline, and the errors for programs that do not exist.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/subprocess.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/timeout.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

aio::SubprocessOptions piped(bool in, bool out, bool err) {
  aio::SubprocessOptions o;
  o.stdin_ = in ? aio::Stdio::pipe : aio::Stdio::devnull;
  o.stdout_ = out ? aio::Stdio::pipe : aio::Stdio::devnull;
  o.stderr_ = err ? aio::Stdio::pipe : aio::Stdio::devnull;
  return o;
}

// The arguments as a vector. (g++ 12 cannot keep a braced list's backing
// array alive across a co_await: "array used as initializer".)
template <class... A>
std::vector<std::string> args(A... a) {
  return {std::string(a)...};
}

std::string big_text(std::size_t n) {
  std::string s;
  s.reserve(n);
  for (std::size_t i = 0; s.size() < n; ++i) s += "line " + std::to_string(i) + "\n";
  return s;
}

}  // namespace

TEST(AioIoProcess, StdoutPipeAndExitStatusZero) {
  auto main = []() -> aio::Task<void> {
    auto p = co_await aio::create_subprocess_exec("echo", args("hello", "world"),
                                                  piped(false, true, false));
    EXPECT_GT(p.pid(), 0);
    EXPECT_FALSE(p.stdin_().valid());
    EXPECT_FALSE(p.stderr_().valid());
    EXPECT_EQ(co_await p.stdout_().readline(), "hello world\n");
    EXPECT_EQ(co_await p.stdout_().read(), "");
    EXPECT_EQ(co_await p.wait(), 0);
    EXPECT_EQ(p.returncode(), 0);
    // Waiting again returns the same status at once.
    EXPECT_EQ(co_await p.wait(), 0);
  };
  aio::run(main());
}

TEST(AioIoProcess, CommunicateSeparatesStdoutStderrAndReportsExitCode) {
  auto main = []() -> aio::Task<void> {
    auto p = co_await aio::create_subprocess_exec(
        "sh", args("-c", "read x; echo out:$x; echo err:$x >&2; exit 3"), piped(true, true, true));
    EXPECT_EQ(p.returncode(), std::nullopt);
    auto r = co_await p.communicate("abc\n");
    EXPECT_EQ(r.out, "out:abc\n");
    EXPECT_EQ(r.err, "err:abc\n");
    EXPECT_EQ(p.returncode(), 3);
  };
  aio::run(main());
}

TEST(AioIoProcess, StderrIntoStdout) {
  auto main = []() -> aio::Task<void> {
    aio::SubprocessOptions o = piped(false, true, false);
    o.stderr_ = aio::Stdio::stdout_;
    auto p = co_await aio::create_subprocess_exec("sh", args("-c", "echo a; echo b >&2"), o);
    auto r = co_await p.communicate();
    EXPECT_EQ(r.out, "a\nb\n");
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(p.returncode(), 0);
  };
  aio::run(main());
}

TEST(AioIoProcess, CommunicateMegabytesThroughCatWithoutDeadlock) {
  auto main = []() -> aio::Task<void> {
    // More than any pipe buffer in both directions at once.
    std::string input = big_text(4 << 20);
    auto p = co_await aio::create_subprocess_exec("cat", args(), piped(true, true, false));
    auto r = co_await p.communicate(input);
    EXPECT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == input);
    EXPECT_EQ(p.returncode(), 0);
  };
  aio::run(main());
}

TEST(AioIoProcess, ChildExitingEarlyWithoutReadingItsInput) {
  auto main = []() -> aio::Task<void> {
    // communicate(): the child never reads; the EPIPE is swallowed.
    auto p = co_await aio::create_subprocess_exec("sh", args("-c", "echo bye; exit 7"),
                                                  piped(true, true, false));
    auto r = co_await p.communicate(big_text(1 << 20));
    EXPECT_EQ(r.out, "bye\n");
    EXPECT_EQ(p.returncode(), 7);

    // Writing by hand to a child that has exited: drain() says BrokenPipeError.
    auto q = co_await aio::create_subprocess_exec("true", args(), piped(true, false, false));
    EXPECT_EQ(co_await q.wait(), 0);
    bool broken = false;
    try {
      for (int i = 0; i < 64; ++i) {
        q.stdin_().write(std::string(64 * 1024, 'x'));
        co_await q.stdin_().drain();
      }
    } catch (const aio::BrokenPipeError&) {
      broken = true;
    }
    EXPECT_TRUE(broken);
    q.stdin_().abort();
  };
  aio::run(main());
}

TEST(AioIoProcess, KillAndTerminateGiveNegativeSignalNumbers) {
  auto main = []() -> aio::Task<void> {
    auto a = co_await aio::create_subprocess_exec("sleep", args("30"), piped(false, false, false));
    auto b = co_await aio::create_subprocess_exec("sleep", args("30"), piped(false, false, false));
    EXPECT_EQ(a.returncode(), std::nullopt);
    a.kill();
    b.terminate();
    EXPECT_EQ(co_await a.wait(), -SIGKILL);
    EXPECT_EQ(co_await b.wait(), -SIGTERM);
    // Signalling a reaped process is a no-op, not an error.
    a.send_signal(SIGTERM);
    a.kill();
    EXPECT_EQ(a.returncode(), -SIGKILL);
  };
  aio::run(main());
}

TEST(AioIoProcess, SeveralTasksWaitAndCancellingOneLeavesTheOthers) {
  auto main = []() -> aio::Task<void> {
    auto p = co_await aio::create_subprocess_exec("sleep", args("30"), piped(false, false, false));
    auto first = aio::spawn(p.wait());   // takes the pidfd
    auto second = aio::spawn(p.wait());  // parks in the wait list
    auto third = aio::spawn(p.wait());
    co_await aio::sleep(10ms);
    first.cancel();  // the reaping waiter goes away: another takes over
    second.cancel();
    co_await aio::sleep(10ms);
    EXPECT_TRUE(first.cancelled());
    EXPECT_TRUE(second.cancelled());
    EXPECT_FALSE(third.done());
    // A timeout on wait() cancels only that wait; the child keeps running.
    EXPECT_THROW(co_await aio::wait_for(p.wait(), 20ms), TimeoutError);
    EXPECT_EQ(p.returncode(), std::nullopt);
    p.kill();
    EXPECT_EQ(co_await third, -SIGKILL);
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
  };
  aio::run(main());
}

TEST(AioIoProcess, PipelineOfTwoProcessesThroughTheLoop) {
  auto main = []() -> aio::Task<void> {
    // printf '3\n1\n2\n' | sort, with the bytes passing through our streams.
    auto producer = co_await aio::create_subprocess_exec("printf", args("3\\n1\\n2\\n"),
                                                         piped(false, true, false));
    auto consumer = co_await aio::create_subprocess_exec("sort", args(), piped(true, true, false));
    for (;;) {
      std::string chunk = co_await producer.stdout_().read(4096);
      if (chunk.empty()) break;
      consumer.stdin_().write(chunk);
      co_await consumer.stdin_().drain();
    }
    consumer.stdin_().close();
    co_await consumer.stdin_().wait_closed();
    std::string sorted = co_await consumer.stdout_().read();
    EXPECT_EQ(sorted, "1\n2\n3\n");
    auto codes = co_await aio::gather(producer.wait(), consumer.wait());
    EXPECT_EQ(std::get<0>(codes), 0);
    EXPECT_EQ(std::get<1>(codes), 0);
  };
  aio::run(main());
}

TEST(AioIoProcess, EnvironmentAndWorkingDirectory) {
  auto main = []() -> aio::Task<void> {
    aio::SubprocessOptions o = piped(false, true, false);
    o.env = args("CELERIAC_TEST_VAR=yes", "PATH=/usr/bin:/bin");
    o.cwd = "/tmp";
    auto p =
        co_await aio::create_subprocess_exec("sh", args("-c", "echo $CELERIAC_TEST_VAR; pwd"), o);
    auto r = co_await p.communicate();
    EXPECT_EQ(r.out, "yes\n/tmp\n");
  };
  aio::run(main());
}

TEST(AioIoProcess, MissingProgramIsAnOSErrorNamingIt) {
  auto main = []() -> aio::Task<void> {
    bool thrown = false;
    try {
      co_await aio::create_subprocess_exec("celeriac-no-such-program", args("x"));
    } catch (const aio::OSError& e) {
      thrown = true;
      EXPECT_NE(std::string(e.what()).find("celeriac-no-such-program"), std::string::npos)
          << e.what();
      EXPECT_EQ(e.errno_value(), ENOENT);
    }
    EXPECT_TRUE(thrown);
    // A bad working directory fails too, and leaks nothing.
    aio::SubprocessOptions o;
    o.cwd = "/nonexistent/celeriac";
    EXPECT_THROW(co_await aio::create_subprocess_exec("true", args(), o), aio::OSError);
  };
  aio::run(main());
}

TEST(AioIoProcess, EmptyProcessHandleIsAnError) {
  aio::Process p;
  EXPECT_EQ(p.pid(), -1);
  EXPECT_EQ(p.returncode(), std::nullopt);
  EXPECT_THROW(p.kill(), InvalidStateError);
  EXPECT_THROW(p.stdout_(), InvalidStateError);
}

TEST(AioIoProcess, CancellingCommunicateKillsNothingAndLeavesNoTasks) {
  auto main = []() -> aio::Task<void> {
    auto p = co_await aio::create_subprocess_exec("sleep", args("30"), piped(true, true, true));
    EXPECT_THROW(co_await aio::wait_for(p.communicate("x"), 20ms), TimeoutError);
    EXPECT_EQ(p.returncode(), std::nullopt);
    co_await aio::sleep(1ms);  // the pump tasks finish their cancellation
    EXPECT_EQ(aio::EventLoop::current().pending_tasks(), 1u);  // only main
    p.kill();
    EXPECT_EQ(co_await p.wait(), -SIGKILL);
  };
  aio::run(main());
}
