// The fork server process and the parent's client of it.
#include "celeriac/mp/fork_server.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sys.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/detail/remote.hpp"
#include "celeriac/mp/errors.hpp"

namespace celeriac::mp {
namespace {

struct Request {
  std::uint32_t op;  // 1 spawn (fd attached), 2 reap
  std::int32_t pid;
};
struct Reply {
  std::int32_t pid;
  std::int32_t status;
  std::int32_t err;
};

std::mutex g_mu;
int g_ctl = -1;
pid_t g_server = -1;
std::atomic<bool> g_in_child{false};

ssize_t send_with_fd(int sock, const void* data, std::size_t n, int fd) {
  iovec iov{const_cast<void*>(data), n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    msg.msg_control = ctl;
    msg.msg_controllen = sizeof ctl;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t r;
  do {
    r = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
  return r;
}

ssize_t recv_with_fd(int sock, void* data, std::size_t n, int* fd) {
  iovec iov{data, n};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)];
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t r;
  do {
    r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  } while (r < 0 && errno == EINTR);
  if (fd) *fd = -1;
  if (r >= 0) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < k; ++i) {
        int f;
        std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
        if (fd && *fd < 0)
          *fd = f;
        else
          ::close(f);
      }
    }
  }
  return r;
}

[[noreturn]] void server_main(int ctl, pid_t parent, bool pdeathsig) {
  ::prctl(PR_SET_NAME, "celeriac-forksrv", 0, 0, 0);
  if (pdeathsig) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);
  // Nothing of the parent's open files belongs here (listening sockets,
  // pipes whose EOF someone waits for): keep stdio and the control socket.
  if (ctl > 3) ::close_range(3, static_cast<unsigned>(ctl - 1), 0);
  ::close_range(static_cast<unsigned>(ctl + 1), ~0U, 0);

  sigset_t chld, old;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &old);
  int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) ::_exit(3);

  std::unordered_map<pid_t, int> statuses;
  std::unordered_set<pid_t> live;
  auto reap_all = [&] {
    signalfd_siginfo si;
    while (::read(sfd, &si, sizeof si) > 0) {
    }
    int st;
    pid_t p;
    while ((p = ::waitpid(-1, &st, WNOHANG)) > 0) {
      live.erase(p);
      statuses[p] = st;
    }
  };

  for (;;) {
    pollfd p[2] = {{ctl, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ::_exit(4);
    }
    if (p[1].revents) reap_all();
    if (!p[0].revents) continue;
    Request req{};
    int fd = -1;
    ssize_t r = recv_with_fd(ctl, &req, sizeof req, &fd);
    if (r <= 0) {
      // The parent is gone: no child of ours may outlive it.
      for (pid_t c : live) ::kill(c, SIGKILL);
      for (pid_t c : live) ::waitpid(c, nullptr, 0);
      ::_exit(0);
    }
    Reply rep{-1, 0, 0};
    int pidfd = -1;
    if (req.op == 1) {
      if (fd < 0) {
        rep.err = EBADF;
      } else {
        pid_t server = ::getpid();
        pid_t c = ::fork();
        if (c == 0) {
          ::close(ctl);
          ::close(sfd);
          ::sigprocmask(SIG_SETMASK, &old, nullptr);
          ::prctl(PR_SET_PDEATHSIG, SIGKILL);
          if (::getppid() != server) ::_exit(0);
          g_in_child.store(true);
          detail::child_main(fd);
        }
        if (c < 0) {
          rep.err = errno;
        } else {
          live.insert(c);
          rep.pid = c;
          pidfd = detail::sys_pidfd_open(c);
          if (pidfd < 0) rep.err = errno;
        }
        ::close(fd);
      }
    } else if (req.op == 2) {
      rep.pid = req.pid;
      auto it = statuses.find(req.pid);
      if (it != statuses.end()) {
        rep.status = it->second;
        statuses.erase(it);
      } else if (live.count(req.pid)) {
        int st = 0;
        pid_t w;
        do {
          w = ::waitpid(req.pid, &st, 0);
        } while (w < 0 && errno == EINTR);
        if (w == req.pid) {
          live.erase(req.pid);
          rep.status = st;
        } else {
          rep.err = errno;
        }
      } else {
        rep.err = ECHILD;
      }
    } else if (fd >= 0) {
      ::close(fd);
    }
    if (send_with_fd(ctl, &rep, sizeof rep, pidfd) < 0) {
      for (pid_t c : live) ::kill(c, SIGKILL);
      ::_exit(0);
    }
    if (pidfd >= 0) ::close(pidfd);
  }
}

void start_locked() {
  if (g_server > 0) return;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    detail::throw_errno("socketpair for the fork server");
  pid_t parent = ::getpid();
  bool main_thread = ::gettid() == parent;
  // Buffered output would otherwise be written again by every child.
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    detail::throw_errno("fork of the fork server");
  }
  if (pid == 0) {
    ::close(sv[0]);
    server_main(sv[1], parent, main_thread);
  }
  ::close(sv[1]);
  g_ctl = sv[0];
  g_server = pid;
}

Reply transact(const Request& req, int fd_to_send, int* fd_received) {
  std::lock_guard lock(g_mu);
  start_locked();
  if (send_with_fd(g_ctl, &req, sizeof req, fd_to_send) < 0)
    throw BrokenExecutor(std::string("celeriac::mp: the fork server is gone: ") +
                         std::strerror(errno));
  Reply rep{};
  ssize_t r = recv_with_fd(g_ctl, &rep, sizeof rep, fd_received);
  if (r != static_cast<ssize_t>(sizeof rep))
    throw BrokenExecutor("celeriac::mp: the fork server is gone (pid " + std::to_string(g_server) +
                         ")");
  return rep;
}

}  // namespace

void init() {
  std::lock_guard lock(g_mu);
  start_locked();
}

pid_t fork_server_pid() {
  std::lock_guard lock(g_mu);
  start_locked();
  return g_server;
}

bool in_child_process() noexcept {
  return g_in_child.load(std::memory_order_relaxed);
}

namespace detail {

SpawnedChild spawn_child(int channel_fd) {
  int pidfd = -1;
  Reply rep = transact(Request{1, 0}, channel_fd, &pidfd);
  if (rep.pid < 0 || rep.err) {
    if (pidfd >= 0) ::close(pidfd);
    throw SystemError(std::string("celeriac::mp: the fork server could not start a child: ") +
                          std::strerror(rep.err ? rep.err : EAGAIN),
                      rep.err);
  }
  return SpawnedChild{rep.pid, pidfd};
}

int reap_child(pid_t pid) {
  Reply rep = transact(Request{2, pid}, -1, nullptr);
  if (rep.err)
    throw SystemError(
        "celeriac::mp: cannot reap child " + std::to_string(pid) + ": " + std::strerror(rep.err),
        rep.err);
  return rep.status;
}

bool wait_pidfd(int pidfd, int ms) {
  pollfd p{pidfd, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

std::string describe_status(int st) {
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char* abbrev = ::sigabbrev_np(sig);
    return "signal " + std::to_string(sig) + " (" + (abbrev ? "SIG" + std::string(abbrev) : "?") +
           ")" + (WCOREDUMP(st) ? ", core dumped" : "");
  }
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  return "wait status " + std::to_string(st);
}

int exitcode_from_status(int st) {
  if (WIFSIGNALED(st)) return -WTERMSIG(st);
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return -1;
}

}  // namespace detail
}  // namespace celeriac::mp
