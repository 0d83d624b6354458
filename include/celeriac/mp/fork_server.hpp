// The fork server: a small process forked from this program early, while it
// has a single thread, from which every worker and Process child is forked.
// Forking from an arbitrary multithreaded program copies locks held by other
// threads (malloc, loggers, your own) into a child where no one will ever
// release them; forking from the single-threaded server cannot.
#pragma once

#include <sys/types.h>

#include <string>

namespace celeriac::mp {

/// Starts the fork server now (idempotent, thread-safe). Call it at the top
/// of main(), before the program starts threads and on the main thread: the
/// children see the program as it was at that moment (globals set later are
/// not visible in them; use a pool initializer or arguments), and code
/// loaded later with dlopen() does not exist there. Pools and processes
/// start it on first use when it is not running yet.
void init();

/// Pid of the fork server (starting it if needed).
pid_t fork_server_pid();

/// True inside a child started by celeriac::mp (worker or Process).
bool in_child_process() noexcept;

namespace detail {

struct SpawnedChild {
  pid_t pid = -1;
  int pidfd = -1;  // owned by the caller
};

/// Forks a child from the fork server; the child runs the task loop on
/// `channel_fd` (the caller keeps and closes its own copy).
SpawnedChild spawn_child(int channel_fd);

/// Wait status (as waitpid) of a child that has exited (its pidfd is
/// readable). Reaps it in the fork server.
int reap_child(pid_t pid);

/// Waits up to `ms` for a pidfd to become readable (the process ended).
bool wait_pidfd(int pidfd, int ms);

/// "signal 11 (SIGSEGV)" / "exit code 3"; exitcode as Python (negative signal).
std::string describe_status(int wait_status);
int exitcode_from_status(int wait_status);

}  // namespace detail
}  // namespace celeriac::mp
