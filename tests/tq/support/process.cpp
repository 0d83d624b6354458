#include "process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace celeriac::tq::test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("mkdtemp(" + tmpl + "): " + std::strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("bind 127.0.0.1:0: ") + std::strerror(errno));
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

pid_t spawn(const std::vector<std::string>& argv, int out_fd,
            const std::map<std::string, std::string>& env, const fs::path& cwd) {
  if (argv.empty()) throw std::invalid_argument("spawn: empty argv");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    ::execvp(args[0], args.data());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    _exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent: no race with an early kill
  return pid;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, fs::path log,
                           std::map<std::string, std::string> env, fs::path cwd)
    : log_(std::move(log)), name_(argv.empty() ? "" : argv[0]) {
  int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + log_.string() + ": " + std::strerror(errno));
  try {
    pid_ = spawn(argv, fd, env, cwd);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    stop(3000ms);
  }
  if (!log_.empty() && ::testing::UnitTest::GetInstance()->current_test_info() != nullptr &&
      ::testing::Test::HasFailure())
    dump_log(name_);
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, 0)),
      log_(std::move(o.log_)),
      name_(std::move(o.name_)),
      status_(o.status_) {
  o.log_.clear();
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) stop(3000ms);
    pid_ = std::exchange(o.pid_, 0);
    log_ = std::move(o.log_);
    o.log_.clear();
    name_ = std::move(o.name_);
    status_ = o.status_;
  }
  return *this;
}

void ChildProcess::reap(int* status, bool block) {
  if (pid_ <= 0) return;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  if (r == pid_) {
    status_ = st;
    pid_ = 0;
  }
  if (status) *status = status_;
}

bool ChildProcess::running() {
  reap(nullptr, false);
  return pid_ > 0;
}

bool ChildProcess::wait_exit(std::chrono::milliseconds timeout, int* status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  if (status) *status = status_;
  return true;
}

int ChildProcess::stop(std::chrono::milliseconds grace, int sig) {
  if (pid_ <= 0) return status_;
  pid_t pgid = pid_;
  ::kill(-pgid, sig);
  if (!wait_exit(grace)) {
    ::kill(-pgid, SIGKILL);
    reap(nullptr, true);
  }
  ::kill(-pgid, SIGKILL);  // stragglers of the group, if any (ESRCH otherwise)
  return status_;
}

void ChildProcess::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  reap(nullptr, true);
}

bool ChildProcess::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (log().find(needle) != std::string::npos) return true;
    if (!running() || std::chrono::steady_clock::now() >= deadline)
      return log().find(needle) != std::string::npos;
    std::this_thread::sleep_for(20ms);
  }
}

void ChildProcess::dump_log(const std::string& what) const {
  std::cerr << "\n===== log of " << what << " (" << log_.string() << ") =====\n"
            << log() << "\n===== end of log of " << what << " =====\n";
}

RunResult run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      const std::map<std::string, std::string>& env, const fs::path& cwd) {
  TempDir dir("celeriac-run");
  auto log = dir.path() / "out.log";
  RunResult r;
  {
    ChildProcess p(argv, log, env, cwd);
    int st = -1;
    if (p.wait_exit(timeout, &st)) {
      r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    } else {
      p.stop(1000ms);
      r.exit_code = -1;
    }
    r.output = p.log();
    // the ChildProcess destructor would dump the log on failure; the caller
    // gets the output instead
    p = ChildProcess();
  }
  return r;
}

}  // namespace celeriac::tq::test
