// posix_spawn-based process creation for aio subprocesses.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "celeriac/aio/detail/io_spawn.hpp"
#include "celeriac/aio/socket.hpp"

extern char** environ;

namespace celeriac::aio::detail {
namespace {

int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

struct Fds {
  std::vector<int> fds;
  ~Fds() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
  int add(int fd) {
    fds.push_back(fd);
    return fd;
  }
  void release(int fd) {
    for (int& f : fds)
      if (f == fd) f = -1;
  }
};

struct Actions {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  Actions() {
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
  }
  ~Actions() {
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
  }
};

void set_nonblocking(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

}  // namespace

Spawned spawn_process(const SpawnOptions& opts) {
  if (opts.argv.empty() || opts.argv[0].empty())
    throw std::invalid_argument("create_subprocess_exec: empty program name");
  if (opts.in.kind == StdioKind::stdout_ || opts.out.kind == StdioKind::stdout_)
    throw std::invalid_argument("create_subprocess_exec: only stderr may be Stdio::stdout");
  const std::string& prog = opts.argv[0];
  Fds owned;
  Actions a;
  Spawned s;
  int devnull = -1;
  auto get_devnull = [&] {
    if (devnull < 0) {
      devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull < 0) throw_os_error(errno, "open", "/dev/null");
      owned.add(devnull);
    }
    return devnull;
  };
  // child_fd: 0, 1 or 2; parent_end receives our end of a pipe.
  auto setup = [&](const StdioSpec& spec, int child_fd, int* parent_end) {
    switch (spec.kind) {
      case StdioKind::inherit:
        return;
      case StdioKind::devnull:
        posix_spawn_file_actions_adddup2(&a.fa, get_devnull(), child_fd);
        return;
      case StdioKind::fd:
        posix_spawn_file_actions_adddup2(&a.fa, spec.fd, child_fd);
        return;
      case StdioKind::stdout_:
        posix_spawn_file_actions_adddup2(&a.fa, 1, 2);
        return;
      case StdioKind::pipe: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) throw_os_error(errno, "pipe2 for", prog);
        owned.add(p[0]);
        owned.add(p[1]);
        int child_end = child_fd == 0 ? p[0] : p[1];
        int our_end = child_fd == 0 ? p[1] : p[0];
        set_nonblocking(our_end);
        posix_spawn_file_actions_adddup2(&a.fa, child_end, child_fd);
        *parent_end = our_end;
        return;
      }
    }
  };
  setup(opts.in, 0, &s.stdin_fd);
  setup(opts.out, 1, &s.stdout_fd);
  setup(opts.err, 2, &s.stderr_fd);
  if (!opts.cwd.empty()) posix_spawn_file_actions_addchdir_np(&a.fa, opts.cwd.c_str());

  // The child starts with no blocked signals and default dispositions: the
  // loop blocks the signals it routes to signalfd, and ignores SIGPIPE.
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&a.attr, &empty);
  posix_spawnattr_setsigdefault(&a.attr, &all);
  if (opts.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&a.attr, 0);
  }
  if (opts.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&a.attr, flags);

  std::vector<char*> argv;
  for (const auto& x : opts.argv) argv.push_back(const_cast<char*>(x.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  char** env = environ;
  if (opts.env) {
    for (const auto& x : *opts.env) envp.push_back(const_cast<char*>(x.c_str()));
    envp.push_back(nullptr);
    env = envp.data();
  }
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, prog.c_str(), &a.fa, &a.attr, argv.data(), env);
  if (rc != 0) {
    std::string where = "'" + prog + "'";
    if (!opts.cwd.empty()) where += " in '" + opts.cwd + "'";
    throw_os_error(rc, "cannot execute", where);
  }
  s.pid = pid;
  s.pidfd = pidfd_open(pid);
  if (s.pidfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw_os_error(e, "pidfd_open for", prog);
  }
  // pidfd_open sets O_CLOEXEC by itself.
  for (int fd : {s.stdin_fd, s.stdout_fd, s.stderr_fd})
    if (fd >= 0) owned.release(fd);
  return s;
}

std::optional<int> try_reap(pid_t pid) {
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == 0) return std::nullopt;
    if (r < 0) {
      if (errno == EINTR) continue;
      // Someone else reaped it (e.g. a SIGCHLD handler with SIG_IGN).
      return 255;
    }
    break;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 255;
}

bool send_signal_pidfd(int pidfd, int sig) {
  if (::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0) == 0) return true;
  if (errno == ESRCH) return false;
  throw_os_error(errno, "pidfd_send_signal", std::to_string(sig));
}

}  // namespace celeriac::aio::detail
