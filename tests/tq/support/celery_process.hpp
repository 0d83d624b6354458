// Test support: a real Python Celery worker and client (under /usr/bin/python3,
// which has Debian's python3-celery) against a test redis-server.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "process.hpp"

namespace celeriac::tq::test {

/// tests/tq/python (the Celery task module and client script).
std::filesystem::path python_dir();

/// Environment that points tests/tq/python at `broker_url` (and backend).
std::map<std::string, std::string> celery_env(const std::string& broker_url);

/// A Python Celery worker (`celery -A celeriac_test_tasks worker`), ready
/// (it logged "ready.") when the constructor returns; stopped by PID.
class CeleryWorker {
 public:
  struct Options {
    std::string pool = "solo";  ///< -P
    int concurrency = 1;        ///< -c
    std::string hostname = "py@celeriac-test";
    std::vector<std::string> queues;  ///< -Q (empty = default "celery")
    bool events = false;              ///< -E
    bool heartbeat = false;           ///< worker-online/heartbeat events (else --without-heartbeat)
    std::vector<std::string> extra;   ///< more arguments
  };
  CeleryWorker(const std::string& broker_url, Options opts);
  explicit CeleryWorker(const std::string& broker_url) : CeleryWorker(broker_url, Options{}) {}
  /// Warm shutdown (SIGTERM), bounded.
  void stop() { proc_.stop(std::chrono::milliseconds(8000)); }
  /// The worker process.
  ChildProcess& process() { return proc_; }

 private:
  TempDir dir_;
  ChildProcess proc_;
};

/// One call for the Python client: send_task(name, args, kwargs, **options).
struct PyCall {
  std::string name;
  nlohmann::json args = nlohmann::json::array();
  nlohmann::json kwargs = nlohmann::json::object();
  nlohmann::json options = nlohmann::json::object();
  double timeout = 10;
};

/// Runs tests/tq/python/celeriac_client.py with `calls` (all sent, then all
/// awaited) and returns its outcomes: [{"id","state","result"} or
/// {"id","state","exc_type","exc_module","exc_args"}]. Throws with the
/// script's output when it fails.
nlohmann::json run_python_client(const std::string& broker_url, const std::vector<PyCall>& calls,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

/// Runs `/usr/bin/python3 -m celery -A celeriac_test_tasks <args...>` to the end.
RunResult run_celery_cli(const std::string& broker_url, const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace celeriac::tq::test
