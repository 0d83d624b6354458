// Process spawning for aio subprocesses: posix_spawn with pipes, a pidfd to
// learn of the exit without SIGCHLD, and close-on-exec hygiene (every fd we
// create is O_CLOEXEC; the child gets only its 0, 1, 2).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace celeriac::aio::detail {

/// What a child's stdin/stdout/stderr is connected to.
enum class StdioKind {
  inherit,  ///< the parent's own fd
  pipe,     ///< a pipe whose other end the parent gets
  devnull,  ///< /dev/null
  stdout_,  ///< stderr only: the same as the child's stdout
  fd,       ///< a given fd of the parent (dup'ed into the child)
};

struct StdioSpec {
  StdioKind kind = StdioKind::inherit;
  int fd = -1;  ///< for StdioKind::fd
};

struct SpawnOptions {
  std::vector<std::string> argv;                ///< argv[0] is looked up in PATH
  std::optional<std::vector<std::string>> env;  ///< "K=V"; nullopt: the parent's
  std::string cwd;                              ///< empty: the parent's
  StdioSpec in, out, err;
  bool new_process_group = false;  ///< setpgid(0, 0) in the child
  bool new_session = false;        ///< setsid() in the child
};

/// A started child. Parent-side pipe ends are non-blocking and close-on-exec
/// (-1 where no pipe was asked for). pidfd becomes readable when it exits.
struct Spawned {
  pid_t pid = -1;
  int pidfd = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

/// Starts the process; throws OSError (FileNotFoundError-like message with the
/// program name when it cannot be executed), closing everything it opened.
Spawned spawn_process(const SpawnOptions& opts);

/// Reaps the child if it has exited: returns its Python-style returncode
/// (exit status, or -signal), or nullopt while it still runs.
std::optional<int> try_reap(pid_t pid);

/// Sends `sig` through the pidfd (no pid-reuse race); false if it had exited.
bool send_signal_pidfd(int pidfd, int sig);

}  // namespace celeriac::aio::detail
