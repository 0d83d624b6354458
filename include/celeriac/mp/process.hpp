// Process: run a function in a child process (Python's multiprocessing.Process).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "celeriac/mp/detail/task.hpp"

namespace celeriac::mp {

/// A child process running `fn(args...)` once. The child is forked from the
/// fork server (see fork_server.hpp), so `fn` must be a function pointer or
/// a captureless lambda and the arguments serializable (checked at compile
/// time); they are copied when the Process is constructed. stdout/stderr are
/// inherited unless redirected (redirect_stdout/redirect_stderr). The
/// child's exit code is 0 when fn returns, 1 when it throws
/// (the exception is printed on stderr), n after exit(n), and -signal when a
/// signal killed it, as Python's. The destructor joins a started process
/// (as std::jthread); kill() it first if it must not be waited for.
class Process {
 public:
  /// A process that will run fn(args...) once started (function pointer or captureless lambda;
  /// serializable arguments).
  template <class F, class... Args>
  explicit Process(F fn, const Args&... args) : Process(checked_call<F, Args...>(fn, args...)) {}
  /// Takes over `other`'s process.
  Process(Process&&) noexcept;
  /// Takes over `other`'s process (this one must not be running).
  Process& operator=(Process&&) noexcept;
  ~Process();

  /// Before start(): the child's stdout / stderr go to `fd` (a pipe, a file,
  /// a socket; it is duplicated, the caller keeps and closes its own).
  /// InvalidStateError once started.
  void redirect_stdout(int fd);
  /// Sends the child's stderr to `fd` (before start()).
  void redirect_stderr(int fd);

  /// Starts the child. InvalidStateError when already started.
  void start();
  /// Waits for the child to end; returns whether it has (false: timeout).
  /// InvalidStateError when not started.
  bool join();
  /// Waits at most `timeout`; true if the process ended (check exitcode()).
  bool join(std::chrono::steady_clock::duration timeout);
  /// Whether it was started and has not ended yet.
  bool is_alive() const;
  /// The child's pid; -1 before start().
  pid_t pid() const noexcept;
  /// Exit code once ended (negative signal number if killed); nullopt while
  /// running or before start.
  std::optional<int> exitcode() const;
  /// Sends SIGTERM / SIGKILL (no-op once ended).
  void terminate();
  /// Sends SIGKILL.
  void kill();
  /// Sends any signal (no-op once ended).
  void send_signal(int sig);

 private:
  struct Impl;
  explicit Process(detail::TaskCall call);
  void redirect(int target, int fd);
  template <class F, class... Args>
  static detail::TaskCall checked_call(const F& fn, const Args&... args) {
    static_assert(detail::check_task<F, std::decay_t<Args>...>());
    return detail::make_call(&detail::invoke_task<F, std::decay_t<Args>...>, fn, args...);
  }
  std::unique_ptr<Impl> impl_;
};

}  // namespace celeriac::mp
