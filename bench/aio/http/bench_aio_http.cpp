// Benchmark (a) of the aio layer: a minimal keep-alive HTTP/1.1 "hello"
// server on one loop thread, driven by wrk. Each server runs pinned to one
// core and wrk to the other; the table ranks the servers by the server's CPU
// time per request (utime+stime from /proc/<pid>/stat divided by the
// requests wrk completed), with req/s and wrk's p99 latency beside it, and
// ratios against the raw epoll loop written in this benchmark.
//
//   bench_aio_http [--quick] [--duration S] [--connections N]
//                  [--only epoll,celeriac,asio,libuv,asyncio,uvloop]
//                  [--server-core C] [--wrk-core C]
//   bench_aio_http --serve NAME --port P     (runs one C++ server; internal)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_common.hpp"

#ifndef CELERIAC_SOURCE_DIR
#define CELERIAC_SOURCE_DIR "."
#endif

namespace {

using namespace std::chrono_literals;

struct ServerKind {
  std::string name;
  bool python = false;  // runs server_asyncio.py instead of this program
  bool uvloop = false;
};

struct Result {
  std::string name;
  bool ok = false;
  std::string error;
  double rps = 0;
  double p99_us = 0;
  double requests = 0;
  double cpu_s = 0;
  double cpu_us_per_req = 0;
};

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("free_port");
    std::exit(1);
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

bool can_connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

void pin_to(int core) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(core, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) std::perror("sched_setaffinity");
}

// Starts argv pinned to `core` (as taskset -c core would); stdout to `out_fd`
// when >= 0, else /dev/null.
pid_t spawn(const std::vector<std::string>& args, int core, int out_fd) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    pin_to(core);
    if (out_fd >= 0) {
      ::dup2(out_fd, 1);
    } else {
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
    }
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  return pid;
}

// utime+stime of the whole process, in seconds.
std::optional<double> cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto close_paren = s.rfind(')');
  if (close_paren == std::string::npos) return std::nullopt;
  std::istringstream in(s.substr(close_paren + 2));
  std::string field;
  // Fields after the command: 3=state ... 14=utime 15=stime (1-based in proc(5)).
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double parse_duration_us(const std::string& v) {
  double x = std::stod(v);
  if (v.find("us") != std::string::npos) return x;
  if (v.find("ms") != std::string::npos) return x * 1e3;
  if (v.find("m") != std::string::npos && v.find("ms") == std::string::npos) return x * 60e6;
  return x * 1e6;  // "s"
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "bench_aio_http";
  return std::string(buf, static_cast<std::size_t>(n));
}

Result run_one(const ServerKind& kind, int duration_s, int connections, int server_core,
               int wrk_core) {
  Result res;
  res.name = kind.name;
  int port = free_port();
  std::vector<std::string> args;
  if (kind.python) {
    args = {"/usr/bin/python3",
            std::string(CELERIAC_SOURCE_DIR) + "/bench/aio/http/server_asyncio.py",
            std::to_string(port)};
    if (kind.uvloop) args.push_back("--uvloop");
  } else {
    args = {self_exe(), "--serve", kind.name, "--port", std::to_string(port)};
  }
  pid_t server = spawn(args, server_core, -1);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  bool up = false;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(server, &status, WNOHANG) == server) {
      res.error = "server exited at start";
      return res;
    }
    if (can_connect(port)) {
      up = true;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  if (!up) {
    res.error = "server did not listen within 10 s";
    ::kill(server, SIGKILL);
    ::waitpid(server, nullptr, 0);
    return res;
  }
  // A short warm-up run (not measured) so every server has its connections'
  // memory and the Python ones their code paths hot.
  {
    std::vector<std::string> warm = {"wrk", "-t1", "-c" + std::to_string(connections), "-d1s",
                                     "http://127.0.0.1:" + std::to_string(port) + "/"};
    pid_t w = spawn(warm, wrk_core, -1);
    ::waitpid(w, nullptr, 0);
  }
  auto cpu0 = cpu_seconds(server);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) std::exit(1);
  std::vector<std::string> wrk = {"wrk",
                                  "-t1",
                                  "-c" + std::to_string(connections),
                                  "-d" + std::to_string(duration_s) + "s",
                                  "--latency",
                                  "http://127.0.0.1:" + std::to_string(port) + "/"};
  pid_t w = spawn(wrk, wrk_core, pipefd[1]);
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int wstatus = 0;
  ::waitpid(w, &wstatus, 0);
  auto cpu1 = cpu_seconds(server);
  ::kill(server, SIGTERM);
  std::this_thread::sleep_for(50ms);
  ::kill(server, SIGKILL);
  ::waitpid(server, nullptr, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    res.error = "wrk failed";
    return res;
  }
  std::istringstream lines(out);
  std::string line;
  bool errors = false;
  while (std::getline(lines, line)) {
    std::istringstream ls(line);
    std::string a, b, c;
    ls >> a >> b >> c;
    if (a == "99%") res.p99_us = parse_duration_us(b);
    if (b == "requests" && c == "in") res.requests = std::stod(a);
    if (a == "Requests/sec:") res.rps = std::stod(b);
    if (a == "Non-2xx" || a == "Socket") errors = true;
  }
  if (res.requests <= 0 || !cpu0 || !cpu1) {
    res.error = "could not parse wrk output:\n" + out;
    return res;
  }
  if (errors)
    std::fprintf(stderr, "  note: wrk reported errors for %s:\n%s", kind.name.c_str(), out.c_str());
  res.cpu_s = *cpu1 - *cpu0;
  res.cpu_us_per_req = res.cpu_s * 1e6 / res.requests;
  res.ok = true;
  return res;
}

int serve(const std::string& name, int port) {
  signal(SIGPIPE, SIG_IGN);
  if (name == "epoll") return celeriac_bench::serve_epoll(port);
  if (name == "asio") return celeriac_bench::serve_asio(port);
  if (name == "libuv") return celeriac_bench::serve_uv(port);
#ifdef CELERIAC_BENCH_HAVE_AIO
  if (name == "celeriac") return celeriac_bench::serve_celeriac(port);
#endif
  std::fprintf(stderr, "unknown server %s\n", name.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int duration = 10, connections = 100, server_core = 0, wrk_core = 1;
  std::string only;
  std::string serve_name;
  int serve_port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--quick")
      duration = 2;
    else if (a == "--duration")
      duration = std::stoi(next());
    else if (a == "--connections")
      connections = std::stoi(next());
    else if (a == "--only")
      only = next();
    else if (a == "--server-core")
      server_core = std::stoi(next());
    else if (a == "--wrk-core")
      wrk_core = std::stoi(next());
    else if (a == "--serve")
      serve_name = next();
    else if (a == "--port")
      serve_port = std::stoi(next());
    else {
      std::fprintf(stderr,
                   "usage: %s [--quick] [--duration S] [--connections N] [--only a,b] "
                   "[--server-core C] [--wrk-core C]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!serve_name.empty()) return serve(serve_name, serve_port);

  std::vector<ServerKind> kinds = {{"epoll"}};
#ifdef CELERIAC_BENCH_HAVE_AIO
  kinds.push_back({"celeriac"});
#endif
  kinds.push_back({"asio"});
  kinds.push_back({"libuv"});
  kinds.push_back({"asyncio", true, false});
  kinds.push_back({"uvloop", true, true});
  if (!only.empty()) {
    std::vector<ServerKind> keep;
    for (const auto& k : kinds)
      if (("," + only + ",").find("," + k.name + ",") != std::string::npos) keep.push_back(k);
    kinds = keep;
  }
  std::printf("benchmark (a): HTTP/1.1 keep-alive hello, wrk -t1 -c%d -d%ds --latency\n",
              connections, duration);
  std::printf("server pinned to core %d, wrk to core %d; CPU = utime+stime of the server\n",
              server_core, wrk_core);
  std::vector<Result> results;
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    std::fprintf(stderr, "[%zu/%zu] %s ...\n", i + 1, kinds.size(), kinds[i].name.c_str());
    results.push_back(run_one(kinds[i], duration, connections, server_core, wrk_core));
    const auto& r = results.back();
    if (r.ok)
      std::fprintf(stderr, "        %.0f req/s, p99 %.0f us, %.3f us CPU/req\n", r.rps, r.p99_us,
                   r.cpu_us_per_req);
    else
      std::fprintf(stderr, "        failed: %s\n", r.error.c_str());
  }
  const Result* base = nullptr;
  for (const auto& r : results)
    if (r.name == "epoll" && r.ok) base = &r;
  std::printf("\n%-10s %12s %10s %12s %14s %12s %12s\n", "server", "req/s", "p99 us", "CPU us/req",
              "CPU-epoll us", "CPU/epoll", "req/s/epoll");
  for (const auto& r : results) {
    if (!r.ok) {
      std::printf("%-10s failed: %s\n", r.name.c_str(), r.error.c_str());
      continue;
    }
    if (base) {
      std::printf("%-10s %12.0f %10.0f %12.3f %+14.3f %11.2fx %11.2fx\n", r.name.c_str(), r.rps,
                  r.p99_us, r.cpu_us_per_req, r.cpu_us_per_req - base->cpu_us_per_req,
                  r.cpu_us_per_req / base->cpu_us_per_req, r.rps / base->rps);
    } else {
      std::printf("%-10s %12.0f %10.0f %12.3f %14s %12s %12s\n", r.name.c_str(), r.rps, r.p99_us,
                  r.cpu_us_per_req, "-", "-", "-");
    }
  }
  std::printf("\n(shared machine: absolute figures are noisy; compare within one run)\n");
  return 0;
}
