// Child processes of the guide: each row in its own, measured as a tree.
#include "run_child.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace guide {
namespace {

double seconds(const timeval& t) {
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
}

double cpu_of(const rusage& u) {
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

// Our live children (from /proc: PPid == us), other than `keep`.
std::vector<pid_t> live_children(pid_t keep) {
  std::vector<pid_t> out;
  pid_t self = getpid();
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');  // the command may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    pid_t ppid = 0;
    rest >> state >> ppid;
    pid_t pid = std::stoi(name);
    if (ppid == self && pid != keep) out.push_back(pid);
  }
  return out;
}

// Reaps the orphans a row left (adopted by us as subreaper), up to 30 s;
// stragglers are killed so the next row starts clean.
void reap_descendants(pid_t keep) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto left = live_children(keep);
    for (pid_t p : left) waitpid(p, nullptr, WNOHANG);
    left = live_children(keep);
    if (left.empty()) return;
    if (std::chrono::steady_clock::now() > deadline) {
      for (pid_t p : left) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string last_lines(const std::string& out, std::size_t n) {
  std::size_t pos = out.size();
  for (std::size_t i = 0; i < n && pos > 0; ++i) {
    pos = out.rfind('\n', pos - 1);
    if (pos == std::string::npos) return out;
  }
  return out.substr(pos + 1);
}

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    throw std::runtime_error(std::string("no free loopback port: ") + std::strerror(errno));
  }
  close(fd);
  return ntohs(a.sin_port);
}

bool can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

pid_t spawn(const std::vector<std::string>& argv, int out_fd) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (out_fd >= 0) {
    posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_fd, STDERR_FILENO);
  }
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

void install_subreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
    std::fprintf(stderr, "celeriac-guide: no subreaper (%s): CPU times miss orphaned children\n",
                 std::strerror(errno));
}

ChildRun run_measured(const std::vector<std::string>& argv, pid_t keep) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  rusage before{};
  getrusage(RUSAGE_CHILDREN, &before);
  pid_t pid = spawn(argv, fds[1]);
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  rusage own{};
  while (wait4(pid, &status, 0, &own) < 0 && errno == EINTR) {
  }
  reap_descendants(keep);
  rusage after{};
  getrusage(RUSAGE_CHILDREN, &after);
  ChildRun r;
  r.cpu_s = cpu_of(after) - cpu_of(before);
  r.peak_mb = static_cast<double>(own.ru_maxrss) / 1024.0;
  auto at = out.rfind("GUIDE-RESULT ");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || at == std::string::npos) {
    r.error = (WIFSIGNALED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                                   : "exit " + std::to_string(WEXITSTATUS(status))) +
              ": " + last_lines(out, 3);
    return r;
  }
  std::sscanf(out.c_str() + at, "GUIDE-RESULT %lld %lf", &r.value, &r.wall_s);
  return r;
}

RedisServer::RedisServer() {
  port_ = free_port();
  int quiet = open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_ = spawn({"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--loglevel", "warning", "--dir", "/tmp"},
               quiet);
  close(quiet);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!can_connect(port_)) {
    if (std::chrono::steady_clock::now() > deadline || waitpid(pid_, nullptr, WNOHANG) == pid_)
      throw std::runtime_error("redis-server did not start on 127.0.0.1:" + std::to_string(port_));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

RedisServer::~RedisServer() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
}

}  // namespace guide
