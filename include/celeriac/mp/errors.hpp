// Errors of the multiprocessing layer.
#pragma once

#include <sys/types.h>
#include <string>

#include "celeriac/error.hpp"

namespace celeriac::mp {

/// A worker process died (signal, abort, exit(n), killed by the OOM killer)
/// while it was running a task. Only that task fails; the pool replaces the
/// worker and keeps serving.
class WorkerDiedError : public Error {
 public:
  /// A worker `pid` died: killed by `signal` (0 if none) or exited with `exit_code`.
  WorkerDiedError(const std::string& what, pid_t pid, int signal, int exit_code)
      : Error(what), pid_(pid), signal_(signal), exit_code_(exit_code) {}
  /// Pid of the dead worker.
  pid_t pid() const noexcept { return pid_; }
  /// Signal that killed it, or 0 when it exited.
  int signal() const noexcept { return signal_; }
  /// Exit code when it exited, or -1 when a signal killed it.
  int exit_code() const noexcept { return exit_code_; }

 private:
  pid_t pid_;
  int signal_;
  int exit_code_;
};

/// An exception thrown by a task in a child process whose type has no
/// counterpart in the parent. type_name() is the demangled C++ type name.
class RemoteError : public Error {
 public:
  /// An exception of C++ type `type` thrown in a child, with its message.
  RemoteError(std::string type, std::string message)
      : Error(type + ": " + message), type_(std::move(type)), message_(std::move(message)) {}
  /// Demangled type name of the exception thrown in the child.
  const std::string& type_name() const noexcept { return type_; }
  /// Its what() text.
  const std::string& message() const noexcept { return message_; }

 private:
  std::string type_;
  std::string message_;
};

/// A value could not be serialized or deserialized (type mismatch between
/// what was sent and what the receiver expects, truncated data...).
class SerializationError : public Error {
 public:
  using Error::Error;
};

/// The other end of a Connection (Pipe) or the channel to a process is closed
/// (Python's EOFError / BrokenPipeError).
class ConnectionClosed : public Error {
 public:
  using Error::Error;
};

/// Queue::get found no item in time (Python's queue.Empty).
class QueueEmpty : public TimeoutError {
 public:
  /// TimeoutError's constructors.
  using TimeoutError::TimeoutError;
};

/// Queue::put found no room in time (Python's queue.Full).
class QueueFull : public TimeoutError {
 public:
  /// TimeoutError's constructors.
  using TimeoutError::TimeoutError;
};

/// The queue was closed: no more puts, and gets fail once it is drained.
class QueueClosed : public InvalidStateError {
 public:
  using InvalidStateError::InvalidStateError;
};

/// A system call failed; what() names the call and errno text.
class SystemError : public Error {
 public:
  /// A system call failed with errno `err`.
  SystemError(const std::string& what, int err) : Error(what), errno_(err) {}
  /// The errno of the failed call.
  int error_code() const noexcept { return errno_; }

 private:
  int errno_;
};

}  // namespace celeriac::mp
