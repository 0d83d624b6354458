// Test support: child processes (redis-server, Python Celery) started on
// loopback for integration tests, stopped by PID when the owner goes away.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace celeriac::tq::test {

/// A private temporary directory, removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "celeriac-tq");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  /// The directory's path.
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// A free TCP port on 127.0.0.1 (bound once to port 0, then released).
int free_port();

/// Reads a whole file ("" when it does not exist).
std::string read_file(const std::filesystem::path& p);

/// A child process with stdout+stderr captured in a log file. The child is
/// the leader of its own process group; stop() signals that group by its id
/// (SIGTERM, then SIGKILL after `grace`), so helpers it forked go too. The
/// destructor stops it and, when the current gtest test has failed, prints
/// the captured log so the failure comes with the peer's side of the story.
class ChildProcess {
 public:
  ChildProcess() = default;
  /// Starts argv[0] (looked up in PATH) with the extra environment `env`,
  /// in `cwd` (empty = inherit), output appended to `log`.
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log,
               std::map<std::string, std::string> env = {}, std::filesystem::path cwd = {});
  ~ChildProcess();
  ChildProcess(ChildProcess&& o) noexcept;
  ChildProcess& operator=(ChildProcess&& o) noexcept;

  /// The child's PID (0 when none).
  pid_t pid() const { return pid_; }
  /// True while the child has not been reaped.
  bool running();
  /// Signals the child's group (default SIGTERM) and waits up to `grace` for
  /// it to exit, then SIGKILLs it. Returns the wait status (or -1).
  int stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000), int sig = 15);
  /// SIGKILL at once (a crash), and reap.
  void kill_hard();
  /// Waits up to `timeout` for the child to exit by itself; true when it did.
  bool wait_exit(std::chrono::milliseconds timeout, int* status = nullptr);
  /// The captured output so far.
  std::string log() const { return read_file(log_); }
  /// The log file path.
  const std::filesystem::path& log_path() const { return log_; }
  /// Waits until the log contains `needle` (true) or the child exits / the
  /// timeout passes (false).
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout);
  /// Prints the log to stderr under a banner naming `what`.
  void dump_log(const std::string& what) const;

 private:
  void reap(int* status, bool block);
  pid_t pid_ = 0;
  std::filesystem::path log_;
  std::string name_;
  int status_ = -1;
};

/// Runs a program to completion (bounded by `timeout`, then killed) and
/// returns {exit status (-1 if killed), combined output}.
struct RunResult {
  int exit_code = -1;
  std::string output;
};
RunResult run_program(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                      const std::map<std::string, std::string>& env = {},
                      const std::filesystem::path& cwd = {});

}  // namespace celeriac::tq::test
