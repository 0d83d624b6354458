// Running one row in a child process and measuring what its whole process
// tree cost (CPU time, peak memory), and the private redis-server of the
// Celery rows.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace guide {

/// What a row's process tree reported and cost.
struct ChildRun {
  long long value = 0;  ///< from its "GUIDE-RESULT value wall" line
  double wall_s = 0;    ///< the work's wall time, as the row measured it
  double cpu_s = 0;     ///< user + system time of the row and every descendant
  double peak_mb = 0;   ///< largest resident set among them (ru_maxrss)
  std::string error;    ///< non-empty when it failed: exit status and its last output
};

/// Makes this process adopt orphaned descendants (PR_SET_CHILD_SUBREAPER),
/// so a row's grandchildren (fork servers, pool workers) are reaped here and
/// their CPU time is counted.
void install_subreaper();

/// Runs argv[0] with argv, waits for it and for every descendant it left
/// (except `keep`, a long-lived child of ours), and returns its measures.
ChildRun run_measured(const std::vector<std::string>& argv, pid_t keep = 0);

/// A private redis-server on a free 127.0.0.1 port, no persistence; stopped
/// by PID in the destructor.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  pid_t pid() const { return pid_; }

 private:
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace guide
