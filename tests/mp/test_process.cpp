#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

void write_file(std::string path, std::string text) {
  std::ofstream(path) << text;
}
void exit_with(int code) {
  std::_Exit(code);
}
void sleep_long() {
  ::sleep(60);
}
void throws() {
  throw std::runtime_error("child failure");
}

std::string temp_path(const char* tag) {
  return "/tmp/celeriac-mp-" + std::string(tag) + "-" + std::to_string(::getpid());
}

TEST(Process, RunsTheFunctionInAChild) {
  auto path = temp_path("proc");
  mp::Process p(&write_file, path, std::string("Process is working"));
  EXPECT_EQ(p.pid(), -1);
  EXPECT_FALSE(p.exitcode().has_value());
  p.start();
  EXPECT_GT(p.pid(), 0);
  EXPECT_NE(p.pid(), ::getpid());
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_FALSE(p.is_alive());
  std::ifstream in(path);
  std::string text;
  std::getline(in, text);
  EXPECT_EQ(text, "Process is working");
  std::remove(path.c_str());
}

TEST(Process, ExitCodeOfExitAndException) {
  mp::Process a(&exit_with, 3);
  mp::Process b(&throws);
  a.start();
  b.start();
  a.join();
  b.join();
  EXPECT_EQ(a.exitcode(), 3);
  EXPECT_EQ(b.exitcode(), 1);
}

void exit_with_megabytes(std::string s) {
  bool intact = s.size() == (std::size_t{5} << 20) && s.front() == 'a' && s.back() == 'z';
  std::_Exit(intact ? static_cast<int>(s.size() >> 20) : 99);
}

TEST(Process, LargeArgumentsArriveIntact) {
  std::string s(std::size_t{5} << 20, 'm');
  s.front() = 'a';
  s.back() = 'z';
  mp::Process p(&exit_with_megabytes, s);
  p.start();
  ASSERT_TRUE(p.join(30s));
  EXPECT_EQ(p.exitcode(), 5);
}

void print_both(std::string out, std::string err) {
  std::printf("%s", out.c_str());
  std::fprintf(stderr, "%s", err.c_str());
}

std::string read_all(int fd) {
  std::string text;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  return text;
}

TEST(Process, RedirectsStdoutAndStderr) {
  int out[2], err[2];
  ASSERT_EQ(::pipe(out), 0);
  ASSERT_EQ(::pipe(err), 0);
  mp::Process p(&print_both, std::string("to out"), std::string("to err"));
  p.redirect_stdout(out[1]);
  p.redirect_stderr(err[1]);
  ::close(out[1]);  // the Process holds its own copies until start()
  ::close(err[1]);
  p.start();
  EXPECT_THROW(p.redirect_stdout(out[0]), InvalidStateError);
  ASSERT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 0);
  // End of file on both pipes: the child's copies closed with it, and the
  // parent kept none.
  EXPECT_EQ(read_all(out[0]), "to out");
  EXPECT_EQ(read_all(err[0]), "to err");
  ::close(out[0]);
  ::close(err[0]);
}

TEST(Process, RedirectsOnlyWhatItIsTold) {
  int err[2];
  ASSERT_EQ(::pipe(err), 0);
  mp::Process p(&print_both, std::string(""), std::string("only err"));
  p.redirect_stderr(err[1]);
  ::close(err[1]);
  p.start();
  ASSERT_TRUE(p.join(10s));
  EXPECT_EQ(read_all(err[0]), "only err");
  ::close(err[0]);
}

TEST(Process, ExitCodeIsMinusTheSignal) {
  mp::Process p(&sleep_long);
  p.start();
  EXPECT_TRUE(p.is_alive());
  EXPECT_FALSE(p.join(50ms));  // timed out: still running
  EXPECT_FALSE(p.exitcode().has_value());
  p.kill();
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), -SIGKILL);

  mp::Process q(&sleep_long);
  q.start();
  q.terminate();
  EXPECT_TRUE(q.join(10s));
  EXPECT_EQ(q.exitcode(), -SIGTERM);
  q.kill();  // no-op once ended
}

TEST(Process, BadStateErrors) {
  mp::Process p([](int) {}, 1);
  EXPECT_THROW(p.join(), InvalidStateError);
  EXPECT_FALSE(p.is_alive());
  EXPECT_THROW(p.kill(), InvalidStateError);
  p.start();
  EXPECT_THROW(p.start(), InvalidStateError);
  p.join();
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Process, SafeAfterTheParentStartedThreads) {
  // Threads that hold a lock while the child is created: the child is forked
  // from the fork server, not from this process, so it never inherits it.
  std::mutex m;
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int i = 0; i < 3; ++i)
    busy.emplace_back([&] {
      while (!stop) {
        std::lock_guard lock(m);
        auto* p = std::malloc(1000);
        std::free(p);
      }
    });
  std::vector<mp::Process> ps;
  for (int i = 0; i < 5; ++i)
    ps.emplace_back(
        [](int n) {
          void* blocks[100];
          for (int k = 0; k < 100; ++k) blocks[k] = std::malloc(static_cast<std::size_t>(n + k));
          for (int k = 0; k < 100; ++k) std::free(blocks[k]);
        },
        i);
  for (auto& p : ps) p.start();
  for (auto& p : ps) {
    EXPECT_TRUE(p.join(20s));
    EXPECT_EQ(p.exitcode(), 0);
  }
  stop = true;
  for (auto& t : busy) t.join();
}

TEST(Process, ForkServerChildrenKnowWhereTheyAre) {
  EXPECT_FALSE(mp::in_child_process());
  EXPECT_GT(mp::fork_server_pid(), 0);
  auto path = temp_path("inchild");
  mp::Process p([](std::string file) { std::ofstream(file) << mp::in_child_process(); }, path);
  p.start();
  p.join();
  std::ifstream in(path);
  int v = -1;
  in >> v;
  EXPECT_EQ(v, 1);
  std::remove(path.c_str());
}
