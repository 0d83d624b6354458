// App::main: Celery's command line (worker, call, result, purge, inspect,
// status, dead-letters) with CLI11.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/detail/beat_cli.hpp"
#include "celeriac/tq/detail/monitor_cli.hpp"
#include "celeriac/tq/worker.hpp"

namespace celeriac::tq {
namespace {

Json parse_json_arg(const std::string& text, const char* what) {
  try {
    return loads(text);
  } catch (const std::exception& e) {
    throw ConfigError(std::string(what) + " is not valid JSON: " + e.what() + " (got '" + text +
                      "')");
  }
}

void set_loglevel(const std::string& level) {
  auto l = spdlog::level::from_str(level == "warning" ? "warn" : level);
  if (l == spdlog::level::off && level != "off")
    throw ConfigError("unknown log level '" + level +
                      "' (expected debug, info, warning, error, critical)");
  spdlog::set_level(l);
}

// Progress line on stderr while waiting (only on a terminal).
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(isatty(2)) {}
  void tick(double seconds) {
    if (!tty_ || seconds < 1.0) return;
    std::fprintf(stderr, "\r%s ... %.1fs", what_.c_str(), seconds);
    std::fflush(stderr);
    shown_ = true;
  }
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
  }

 private:
  std::string what_;
  bool tty_;
  bool shown_ = false;
};

// Waits for a result, printing progress; returns the exit code.
int wait_and_print(App& app, const std::string& id, double timeout, bool show_traceback) {
  auto start = std::chrono::steady_clock::now();
  Progress progress("waiting for task " + id);
  for (;;) {
    double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double left = timeout - elapsed;
    if (timeout > 0 && left <= 0) {
      std::cerr << "timed out after " << timeout << " s waiting for task " << id << "\n";
      return 3;
    }
    auto slice = std::chrono::milliseconds(
        timeout > 0 ? std::min<long long>(250, static_cast<long long>(left * 1000) + 1) : 250);
    auto meta = app.backend().wait(id, slice);
    if (meta && is_ready(meta->status)) {
      if (meta->status == State::Success) {
        std::cout << dumps(meta->result) << "\n";
        return 0;
      }
      TaskError e = detail::error_from_meta(*meta);
      std::cerr << to_string(meta->status) << " " << e.exc_type() << ": " << e.message() << "\n";
      if (show_traceback && meta->traceback) std::cerr << *meta->traceback;
      return 1;
    }
    progress.tick(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

int run_worker(App& app, const WorkerOptions& opts, std::unique_ptr<Beat> beat = nullptr,
               const detail::MonitorCliOptions* monitor = nullptr) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads started below inherit it
  Worker worker(app, opts);
  worker.start();
  if (beat) beat->start();  // worker -B: beat beside the consumer
  auto servers = monitor ? detail::start_worker_monitor(app, worker, *monitor) : nullptr;
  std::atomic<bool> done{false};
  std::thread signals([&] {
    int count = 0;
    while (!done) {
      timespec ts{0, 200'000'000};
      int sig = sigtimedwait(&set, nullptr, &ts);
      if (sig <= 0) continue;
      if (beat) beat->stop();
      if (++count == 1) {
        spdlog::warn(
            "{}: warm shutdown ({}): finishing running tasks, putting prefetched messages back "
            "(signal again to stop at once)",
            worker.hostname(), sig == SIGINT ? "SIGINT" : "SIGTERM");
        worker.stop(false);
      } else {
        spdlog::warn("{}: cold shutdown: putting back unacknowledged messages and exiting",
                     worker.hostname());
        worker.stop(true);
        std::fflush(nullptr);
        std::_Exit(1);
      }
    }
  });
  while (!worker.wait(std::chrono::milliseconds(500))) {
  }
  done = true;
  signals.join();
  if (beat) beat->stop();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  auto c = worker.counters();
  spdlog::info(
      "{} stopped: {} received, {} succeeded, {} failed, {} retried, {} revoked, {} dead-lettered",
      worker.hostname(), c.received, c.succeeded, c.failed, c.retried, c.revoked, c.dead_lettered);
  return 0;
}

std::vector<std::string> split_queues(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (const auto& s : in) {
    std::size_t start = 0;
    while (start <= s.size()) {
      auto comma = s.find(',', start);
      std::string q =
          s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      if (!q.empty()) out.push_back(q);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  return out;
}

}  // namespace

int App::main(int argc, char** argv, const MainOptions& options) {
  std::string program =
      options.program.empty() ? (argc > 0 ? argv[0] : "celeriac") : options.program;
  CLI::App cli{"celeriac task queue: Celery's commands for C++ apps (Celery protocol 2)", program};
  cli.require_subcommand(1);
  cli.fallthrough();
  std::string broker_url = config_.broker_url, backend_url = config_.backend_url, loglevel = "info";
  cli.add_option("-b,--broker", broker_url,
                 "broker URL: memory://, sqlite:///file.db, redis://host:port/db")
      ->envname("CELERIAC_BROKER_URL");
  cli.add_option("--backend,--result-backend", backend_url,
                 "result backend URL (default: the broker URL)")
      ->envname("CELERIAC_RESULT_BACKEND");
  cli.add_option("-l,--loglevel", loglevel, "debug, info, warning, error, critical");

  // worker
  WorkerOptions wopts;
  std::vector<std::string> wqueues;
  CLI::App* worker = nullptr;
  long long visibility_timeout = 0;
  CLI::App* no_worker = nullptr;  // the generic program explains where workers come from
  if (!options.with_worker) {
    no_worker =
        cli.add_subcommand("worker", "(not in this program: run `worker` from your app's binary)");
    no_worker->prefix_command();
  }
  if (options.with_worker) {
    worker = cli.add_subcommand("worker", "start a worker consuming the app's tasks");
    worker->add_option("-n,--hostname", wopts.hostname, "node name (default celery@<host>)");
    worker->add_option("-c,--concurrency", wopts.concurrency, "pool size (default: number of CPUs)")
        ->check(CLI::Range(1, 10000));
    worker
        ->add_option(
            "-P,--pool", wopts.pool,
            "pool: threads (default), processes (crash isolation), async (coroutine tasks) or solo")
        ->check(CLI::IsMember({"threads", "processes", "async", "solo"}));
    worker->add_option("-Q,--queues", wqueues,
                       "queues to consume, comma-separated (default: celery)");
    worker
        ->add_option("--prefetch-multiplier", wopts.prefetch_multiplier,
                     "messages held per pool slot")
        ->check(CLI::Range(1, 100000));
    worker->add_flag("-E,--task-events", wopts.task_events, "send task events (monitoring)");
    worker->add_flag("--acks-late", wopts.acks_late, "acknowledge after the task ran");
    worker->add_flag("--reject-on-worker-lost", wopts.reject_on_worker_lost,
                     "with --acks-late: requeue a task whose child process died (processes pool)");
    worker->add_option("--max-tasks-per-child", wopts.max_tasks_per_child,
                       "processes pool: replace a child after this many tasks (default: never)");
    worker->add_option("--max-memory-per-child", wopts.max_memory_per_child,
                       "processes pool: replace a child whose resident memory went above this many "
                       "KiB, after its task (default: never)");
    worker->add_option("--time-limit", wopts.time_limit,
                       "hard time limit (s) of tasks without one: the result is stored as "
                       "TimeLimitExceeded past it, in every pool");
    worker->add_option("--soft-time-limit", wopts.soft_time_limit,
                       "soft time limit (s) of tasks without one: SoftTimeLimitExceeded at the "
                       "task's next check_cancelled() (async: its next await)");
    worker->add_option("--max-message-size", wopts.max_message_size,
                       "largest accepted envelope (bytes)");
    worker
        ->add_option(
            "--visibility-timeout", visibility_timeout,
            "seconds before a reserved, unacknowledged message of a dead worker is delivered again "
            "(default: the broker URL's ?visibility_timeout=, else 3600)")
        ->check(CLI::Range(1, 365 * 86400));
  }

  // beat (and worker -B)
  detail::BeatCliOptions beat_opts;
  bool worker_beat = false;
  detail::add_beat_command(cli, beat_opts);
  if (worker) detail::add_worker_beat_options(*worker, worker_beat, beat_opts);
  detail::MonitorCliOptions monitor_opts;
  detail::add_monitor_commands(cli, monitor_opts);
  if (worker) detail::add_worker_monitor_options(*worker, monitor_opts);

  // call
  auto* call =
      cli.add_subcommand("call", "send a task and print its result (or its id with --no-wait)");
  std::string call_name, call_args = "[]", call_kwargs = "{}", call_queue;
  int call_priority = -1;
  double call_countdown = -1, call_expires = -1, call_timeout = 0;
  bool no_wait = false, call_tb = false;
  call->add_option("name", call_name, "task name, e.g. tasks.add")->required();
  call->add_option("args", call_args, "positional arguments as a JSON array, e.g. '[2, 3]'");
  call->add_option("kwargs", call_kwargs, "keyword arguments as a JSON object, e.g. '{\"y\": 3}'");
  call->add_option("-q,--queue", call_queue, "queue (default: celery)");
  call->add_option("--priority", call_priority, "0 (highest) .. 9")->check(CLI::Range(0, 9));
  call->add_option("--countdown", call_countdown, "run no sooner than this many seconds from now");
  call->add_option("--expires", call_expires, "revoke if not started within this many seconds");
  call->add_option("-t,--timeout", call_timeout, "seconds to wait for the result (0 = forever)");
  call->add_flag("--no-wait", no_wait, "print the task id and return at once");
  call->add_flag("--traceback", call_tb, "print the traceback of a failed task");

  // result
  auto* result = cli.add_subcommand("result", "print the result of a task id (waits for it)");
  std::string result_id;
  double result_timeout = 0;
  bool result_tb = false, result_nowait = false;
  result->add_option("id", result_id, "task id")->required();
  result->add_option("-t,--timeout", result_timeout, "seconds to wait (0 = forever)");
  result->add_flag("--traceback", result_tb, "print the traceback of a failed task");
  result->add_flag("--no-wait", result_nowait, "print the current state and return");

  // purge
  auto* purge = cli.add_subcommand("purge", "delete all waiting messages of the queues");
  std::vector<std::string> purge_queues;
  purge->add_option("-Q,--queues", purge_queues, "queues (default: celery)");

  // inspect
  auto* inspect = cli.add_subcommand(
      "inspect", "ask running workers (every broker: redis, amqp, sqlite, memory)");
  std::string inspect_method;
  double inspect_timeout = 1.0;
  std::vector<std::string> destination;
  inspect
      ->add_option("method", inspect_method,
                   "ping, stats, registered, active, reserved, scheduled, revoked, "
                   "active_queues, conf")
      ->required()
      ->check(CLI::IsMember({"ping", "stats", "registered", "active", "reserved", "scheduled",
                             "revoked", "active_queues", "conf"}));
  inspect->add_option("-t,--timeout", inspect_timeout, "seconds to wait for replies");
  inspect->add_option("-d,--destination", destination, "node names to ask (default: all)");

  // status
  auto* status = cli.add_subcommand(
      "status", "show the broker, queue lengths and (with remote control) online workers");
  std::vector<std::string> status_queues;
  status->add_option("-Q,--queues", status_queues, "queues to show (default: celery)");

  // dead-letters
  auto* dead =
      cli.add_subcommand("dead-letters", "show messages the workers rejected, with the reason");
  std::size_t dead_limit = 20;
  dead->add_option("-n,--limit", dead_limit, "how many (most recent)");

  const std::string no_worker_text = "'" + program +
                                     " worker': this program has no tasks compiled in; a worker "
                                     "runs your app's tasks, so start it from your "
                                     "app's binary (int main(...) { ...; return app.main(argc, "
                                     "argv); }, then './your_app worker')";
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (no_worker && no_worker->parsed()) {  // whatever options followed `worker`
      std::cerr << "Error: " << no_worker_text << "\n";
      return 2;
    }
    return cli.exit(e);
  }

  try {
    set_loglevel(loglevel);
    set_urls(broker_url, backend_url);
    if (worker && worker->parsed()) {
      wopts.queues = split_queues(wqueues);
      wopts.visibility_timeout = std::chrono::seconds(visibility_timeout);
      if (monitor_opts.worker_dashboard_port > 0) wopts.task_events = true;
      return run_worker(*this, wopts,
                        worker_beat ? detail::make_cli_beat(*this, beat_opts) : nullptr,
                        &monitor_opts);
    }
    if (no_worker && no_worker->parsed()) throw ConfigError(no_worker_text);
    if (beat_opts.command->parsed()) return detail::run_beat_command(*this, beat_opts);
    if (auto rc = detail::run_monitor_command(*this, monitor_opts)) return *rc;
    if (call->parsed()) {
      CallOptions o;
      o.queue = call_queue;
      if (call_priority >= 0) o.priority = call_priority;
      if (call_countdown >= 0) o.countdown = call_countdown;
      if (call_expires >= 0) o.expires_in = call_expires;
      Json args = parse_json_arg(call_args, "ARGS");
      Json kwargs = parse_json_arg(call_kwargs, "KWARGS");
      if (!args.is_array()) throw ConfigError("ARGS must be a JSON array, got " + call_args);
      if (!kwargs.is_object())
        throw ConfigError("KWARGS must be a JSON object, got " + call_kwargs);
      TaskMessage m = build_message(call_name, std::move(args), std::move(kwargs), o);
      std::string id = publish(m, o);  // a unique task's twin id when one is pending
      if (no_wait) {
        std::cout << id << "\n";
        return 0;
      }
      return wait_and_print(*this, id, call_timeout, call_tb);
    }
    if (result->parsed()) {
      if (result_nowait) {
        auto meta = backend().get(result_id);
        if (!meta) {
          std::cout << "PENDING\n";
          return 0;
        }
        std::cout << meta->to_json() << "\n";
        return 0;
      }
      return wait_and_print(*this, result_id, result_timeout, result_tb);
    }
    if (purge->parsed()) {
      auto qs = split_queues(purge_queues);
      if (qs.empty()) qs.push_back(config_.default_queue);
      std::size_t total = 0;
      for (auto& q : qs) {
        std::size_t n = broker().purge(q);
        std::cout << "purged " << n << " message(s) from queue '" << q << "'\n";
        total += n;
      }
      std::cout << "purged " << total << " message(s) in total\n";
      return 0;
    }
    if (inspect->parsed()) {
      auto client = make_control_client(config_.broker_url);
      std::optional<std::vector<std::string>> dest;
      if (!destination.empty()) dest = destination;
      auto replies = client->broadcast(
          inspect_method, Json::object(), dest,
          std::chrono::milliseconds(static_cast<long long>(inspect_timeout * 1000)));
      if (replies.empty()) {
        std::cerr << "Error: No nodes replied within time constraint.\n";
        return 1;
      }
      for (auto& r : replies) std::cout << r.dump(2) << "\n";
      std::cout << replies.size() << " node(s) online.\n";
      return 0;
    }
    if (status->parsed()) {
      auto qs = split_queues(status_queues);
      if (qs.empty()) qs.push_back(config_.default_queue);
      std::cout << "broker:  " << broker().url() << "\n";
      std::cout << "backend: " << backend().url() << "\n";
      for (auto& q : qs)
        std::cout << "queue '" << q << "': " << broker().queue_length(q) << " message(s) waiting\n";
      std::cout << "dead letters: " << broker().dead_letters(1000000).size() << "\n";
      try {
        auto client = make_control_client(config_.broker_url);
        auto replies = client->broadcast("ping", Json::object(), std::nullopt,
                                         std::chrono::milliseconds(1000));
        for (auto& r : replies)
          for (auto it = r.begin(); it != r.end(); ++it) std::cout << "-> " << it.key() << ": OK\n";
        std::cout << replies.size() << " node(s) online.\n";
      } catch (const ConfigError& e) {
        std::cout << "workers: unknown (" << e.what() << ")\n";
      }
      return 0;
    }
    if (dead->parsed()) {
      auto letters = broker().dead_letters(dead_limit);
      for (auto& d : letters) {
        auto [id, name] = peek_id_and_name(d.envelope);
        std::cout << format_iso8601(TimePoint(std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(d.time))))
                  << "  queue=" << d.queue << "  task=" << name.value_or("?")
                  << "  id=" << id.value_or("?") << "\n    reason: " << d.reason << "\n";
      }
      std::cout << letters.size() << " dead letter(s)\n";
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

}  // namespace celeriac::tq
