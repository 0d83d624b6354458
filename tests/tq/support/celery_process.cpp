#include "celery_process.hpp"

#include <stdexcept>

namespace celeriac::tq::test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

fs::path python_dir() {
  return fs::path(CELERIAC_SOURCE_DIR) / "tests" / "tq" / "python";
}

std::map<std::string, std::string> celery_env(const std::string& broker_url) {
  return {{"CELERIAC_TEST_BROKER", broker_url},
          {"CELERIAC_TEST_BACKEND", broker_url},
          {"PYTHONPATH", python_dir().string()},
          {"PYTHONDONTWRITEBYTECODE", "1"},
          {"PYTHONUNBUFFERED", "1"}};
}

CeleryWorker::CeleryWorker(const std::string& broker_url, Options opts) : dir_("celeriac-celery") {
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   "-m",
                                   "celery",
                                   "-A",
                                   "celeriac_test_tasks",
                                   "worker",
                                   "-P",
                                   opts.pool,
                                   "-c",
                                   std::to_string(opts.concurrency),
                                   "-n",
                                   opts.hostname,
                                   "--loglevel=INFO",
                                   "--without-mingle",
                                   "--without-gossip"};
  if (!opts.heartbeat) argv.push_back("--without-heartbeat");
  if (!opts.queues.empty()) {
    std::string q;
    for (auto& s : opts.queues) q += (q.empty() ? "" : ",") + s;
    argv.insert(argv.end(), {"-Q", q});
  }
  if (opts.events) argv.push_back("-E");
  argv.insert(argv.end(), opts.extra.begin(), opts.extra.end());
  proc_ =
      ChildProcess(argv, dir_.path() / "celery-worker.log", celery_env(broker_url), dir_.path());
  if (!proc_.wait_for_log(" ready.", 30s)) {
    std::string log = proc_.log();
    proc_.stop(2000ms);
    throw std::runtime_error("Python Celery worker did not become ready; log:\n" + log);
  }
}

nlohmann::json run_python_client(const std::string& broker_url, const std::vector<PyCall>& calls,
                                 std::chrono::milliseconds timeout) {
  nlohmann::json j = nlohmann::json::array();
  for (auto& c : calls)
    j.push_back({{"name", c.name},
                 {"args", c.args},
                 {"kwargs", c.kwargs},
                 {"options", c.options},
                 {"timeout", c.timeout}});
  auto r =
      run_program({"/usr/bin/python3", (python_dir() / "celeriac_client.py").string(), j.dump()},
                  timeout, celery_env(broker_url));
  if (r.exit_code != 0)
    throw std::runtime_error("celeriac_client.py failed (exit " + std::to_string(r.exit_code) +
                             "):\n" + r.output);
  // the outcome is the last non-empty line
  auto end = r.output.find_last_not_of("\n");
  auto start = r.output.rfind('\n', end);
  std::string line = r.output.substr(
      start == std::string::npos ? 0 : start + 1,
      end == std::string::npos ? 0 : end - (start == std::string::npos ? 0 : start + 1) + 1);
  try {
    return nlohmann::json::parse(line);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("celeriac_client.py printed no JSON (") + e.what() +
                             "):\n" + r.output);
  }
}

RunResult run_celery_cli(const std::string& broker_url, const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {"/usr/bin/python3", "-m", "celery", "-A", "celeriac_test_tasks"};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_program(argv, timeout, celery_env(broker_url));
}

}  // namespace celeriac::tq::test
