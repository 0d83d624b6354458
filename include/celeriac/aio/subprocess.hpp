// Subprocesses as asyncio.create_subprocess_exec: pipes as streams, wait(),
// communicate(), signals and the Python-style returncode. The exit is learnt
// from a pidfd registered with the loop (no SIGCHLD handler, no blocking).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/aio/streams.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

/// Where a child's stdin/stdout/stderr goes (asyncio.subprocess.PIPE...).
enum class Stdio {
  inherit,  ///< the parent's (None in asyncio)
  pipe,     ///< a pipe, as Process::stdin_/stdout_/stderr_ streams (PIPE)
  devnull,  ///< /dev/null (DEVNULL)
  stdout_,  ///< stderr only: into the child's stdout (STDOUT)
};

/// Settings of create_subprocess_exec.
struct SubprocessOptions {
  /// Not an aggregate on purpose: g++ 12 destroys a non-trivially
  /// destructible aggregate temporary twice when the co_await that uses it
  /// throws (e.g. `co_await create_subprocess_exec("missing")` with the
  /// default options). See docs/aio-internals.md, "g++ 12 caveats".
  SubprocessOptions() noexcept {}
  /// The child's stdin: inherit, pipe or devnull.
  Stdio stdin_ = Stdio::inherit;
  /// The child's stdout: inherit, pipe or devnull.
  Stdio stdout_ = Stdio::inherit;
  /// The child's stderr: inherit, pipe, devnull or stdout.
  Stdio stderr_ = Stdio::inherit;
  std::optional<std::vector<std::string>> env;  ///< "KEY=VALUE"; nullopt: ours
  std::string cwd;                              ///< empty: ours
  bool new_process_group = false;               ///< process_group=0
  bool start_new_session = false;               ///< setsid()
  StreamOptions stream;                         ///< for the pipes
};

/// What communicate() collected.
struct CommunicateResult {
  std::string out;  ///< stdout, when it was a pipe
  std::string err;  ///< stderr, when it was a pipe
};

namespace detail {
struct ProcessState;
}

/// A child process (asyncio.subprocess.Process). Copies share it. Loop thread only.
class Process {
 public:
  Process() = default;
  /// A handle on a child's state (internal: made by create_subprocess_exec).
  explicit Process(std::shared_ptr<detail::ProcessState> st) noexcept : st_(std::move(st)) {}

  /// The process id.
  pid_t pid() const;
  /// nullopt while it runs; then the exit status, or -N when killed by signal N.
  std::optional<int> returncode() const;
  /// Waits for the exit and returns returncode (several tasks may wait).
  Task<int> wait();
  /// Writes `input` to stdin (then closes it), reads stdout and stderr to EOF
  /// concurrently (no deadlock on big outputs), and waits for the exit. A
  /// child that exits without reading its input is fine (EPIPE is ignored).
  Task<CommunicateResult> communicate(std::string input = {});
  /// Sends a signal (a no-op once the process has been reaped).
  void send_signal(int sig);
  /// SIGTERM.
  void terminate();
  /// SIGKILL.
  void kill();

  /// The pipe streams (valid() is false where no pipe was asked for).
  StreamWriter& stdin_();
  /// The child's stdout (with stdout_ = pipe).
  StreamReader& stdout_();
  /// The child's stderr (with stderr_ = pipe).
  StreamReader& stderr_();

 private:
  std::shared_ptr<detail::ProcessState> st_;
};

/// Starts `program` (looked up in PATH) with `args` (argv[1..]). OSError
/// naming the program when it cannot be executed.
Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                     SubprocessOptions options = {});

}  // namespace celeriac::aio
