// Worker: wires the pipeline — consumer -> job lifecycle -> execution pool —
// and answers remote control. See consumer.hpp, lifecycle.hpp and
// detail/execution_pool.hpp for the parts.
#include "celeriac/tq/worker.hpp"

#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstring>

#include <spdlog/spdlog.h>

#include "../flow/rate_limiter.hpp"
#include "celeriac/tq/detail/execution_pool.hpp"
#include "celeriac/tq/rate_limit.hpp"
#include "consumer.hpp"
#include "lifecycle.hpp"
#include "resizable_pool.hpp"
#include "time_limits.hpp"
#include "worker_control.hpp"

namespace celeriac::tq {

namespace {

std::string fmt_queues(const std::vector<std::string>& q) {
  std::string s;
  for (auto& x : q) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::string default_hostname() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
  return std::string("celery@") + host.data();
}

void check_options(const WorkerOptions& o) {
  if (std::find(detail::kPoolNames.begin(), detail::kPoolNames.end(), o.pool) ==
      detail::kPoolNames.end())
    throw ConfigError("unknown pool '" + o.pool + "' (expected threads, processes, async or solo)");
  if (o.concurrency < 0)
    throw ConfigError("concurrency must be >= 1, got " + std::to_string(o.concurrency));
  if (o.prefetch_multiplier < 1)
    throw ConfigError("prefetch multiplier must be >= 1, got " +
                      std::to_string(o.prefetch_multiplier));
  detail::check_time_limits("worker", o.soft_time_limit, o.time_limit);
  if (o.visibility_timeout.count() < 0)
    throw ConfigError("visibility timeout must be >= 1 s, got " +
                      std::to_string(o.visibility_timeout.count()));
}

}  // namespace

struct Worker::Impl {
  App& app;
  WorkerOptions opt;
  std::string hostname;
  std::vector<std::string> queues;
  std::atomic<std::size_t> prefetch_limit{0};  // changes with pool_grow/pool_shrink
  std::unique_ptr<Broker> broker;
  std::unique_ptr<detail::ResizablePool> pool;
  std::unique_ptr<detail::JobLifecycle> lifecycle;
  std::unique_ptr<detail::Consumer> consumer;
  detail::WorkerBooks books;
  detail::RateLimiter rate_limiter;

  mutable std::mutex mu;  // guards the flags below
  std::condition_variable finished_cv;
  bool started = false;
  bool finished = false;

  Impl(App& a, WorkerOptions o) : app(a), opt(std::move(o)) {}

  // Runs on the consumer's thread once it stopped reserving: running tasks
  // finish (queued ones are put back by the lifecycle), then everything not
  // acknowledged goes back to the broker.
  void shutdown_sequence() {
    pool->shutdown();
    lifecycle->stop_services();
    std::size_t restored = 0;
    try {
      broker->flush();
      restored = broker->restore_unacked();
    } catch (const std::exception& e) {
      spdlog::error("restore of unacknowledged messages failed: {}", e.what());
    }
    if (restored) spdlog::info("{}: restored {} unacknowledged message(s)", hostname, restored);
    try {
      broker->close();
    } catch (...) {
    }
    {
      std::lock_guard lock(mu);
      finished = true;
    }
    finished_cv.notify_all();
  }
};

Worker::Worker(App& app, WorkerOptions options)
    : impl_(std::make_unique<Impl>(app, std::move(options))) {}

Worker::~Worker() {
  if (!impl_) return;
  bool need_stop;
  {
    std::lock_guard lock(impl_->mu);
    need_stop = impl_->started;
  }
  if (need_stop) {
    stop();
    impl_->consumer->join();
  }
}

void Worker::start() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (s.started) throw InvalidStateError("worker already started");
  }
  check_options(s.opt);
  s.hostname = s.opt.hostname.empty() ? default_hostname() : s.opt.hostname;
  s.queues =
      s.opt.queues.empty() ? std::vector<std::string>{s.app.config().default_queue} : s.opt.queues;
  detail::PoolSettings ps;
  ps.concurrency = s.opt.pool == "solo"    ? 1
                   : s.opt.concurrency > 0 ? static_cast<std::size_t>(s.opt.concurrency)
                                           : detail::default_concurrency(s.opt.pool);
  ps.max_tasks_per_child = s.opt.max_tasks_per_child;
  ps.max_memory_per_child = s.opt.max_memory_per_child;
  ps.time_limit = s.opt.time_limit;
  ps.soft_time_limit = s.opt.soft_time_limit;
  // The fork server starts before this worker has any thread of its own.
  if (s.opt.pool == "processes") detail::prepare_process_pool(s.app);
  s.prefetch_limit = ps.concurrency * static_cast<std::size_t>(s.opt.prefetch_multiplier);
  Url url = Url::parse(s.app.config().broker_url.empty() ? kDefaultUrl : s.app.config().broker_url);
  s.broker = make_broker(s.app.config().broker_url);
  s.lifecycle = std::make_unique<detail::JobLifecycle>(
      s.app, *s.broker, s.books,
      detail::LifecycleSettings{s.hostname, s.opt.acks_late, s.opt.reject_on_worker_lost,
                                s.opt.max_message_size});
  s.pool = detail::make_resizable_pool(s.opt.pool, *s.lifecycle, ps);
  detail::ConsumerSettings cs;
  cs.queues = s.queues;
  cs.window = s.prefetch_limit;
  cs.poll_interval = s.opt.poll_interval;
  cs.visibility_timeout =
      s.opt.visibility_timeout.count() > 0 ? s.opt.visibility_timeout : visibility_timeout_of(url);
  s.consumer = std::make_unique<detail::Consumer>(
      *s.broker, *s.lifecycle, std::move(cs),
      [&s](detail::JobPtr j) { s.pool->submit(std::move(j)); }, [&s] { s.shutdown_sequence(); });
  s.lifecycle->on_released([&s] { s.consumer->release(); });
  s.lifecycle->on_eta_ahead([&s](detail::JobPtr j) { s.consumer->hold(std::move(j)); });
  if (s.opt.task_events) url.query["events"] = "1";  // -E: the services read the URL
  s.lifecycle->set_rate_limiter(&s.rate_limiter);
  s.lifecycle->on_rate_limited(
      [&s](detail::JobPtr j, TimePoint t) { s.consumer->hold_until(std::move(j), t, true); });
  for (auto& f : worker_services(url.scheme)) {
    try {
      s.lifecycle->add_service(f(url, *this));
    } catch (const std::exception& e) {
      spdlog::error("worker service failed to start: {}", e.what());
    }
  }
  {
    std::lock_guard lock(s.mu);
    s.started = true;
  }
  for (const auto& glob : s.app.router().unmatched_globs(s.app.task_names()))
    spdlog::warn("route pattern '{}' matches no registered task", glob);
  s.consumer->start();
  spdlog::info("{} ready: pool={} concurrency={} queues={} broker={}", s.hostname, s.pool->name(),
               s.pool->concurrency(), fmt_queues(s.queues), s.broker->url());
}

void Worker::stop(bool immediate) {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (!s.started) return;
  }
  s.lifecycle->stop();
  s.consumer->stop();
  if (immediate) {
    // Put back everything not acknowledged now; running tasks cannot be
    // interrupted, the caller (CLI) exits the process next.
    try {
      s.broker->flush();
      s.broker->restore_unacked();
    } catch (const std::exception& e) {
      spdlog::error("immediate restore failed: {}", e.what());
    }
  }
}

bool Worker::wait(std::chrono::milliseconds timeout) {
  Impl& s = *impl_;
  std::unique_lock lock(s.mu);
  if (!s.started) return true;
  bool ok = s.finished_cv.wait_for(lock, timeout, [&] { return s.finished; });
  lock.unlock();
  if (ok) s.consumer->join();
  return ok;
}

void Worker::run() {
  start();
  while (!wait(std::chrono::milliseconds(1000))) {
  }
}

bool Worker::running() const noexcept {
  std::lock_guard lock(impl_->mu);
  return impl_->started && !impl_->finished;
}

WorkerCounters Worker::counters() const {
  const auto& books = impl_->books;
  std::lock_guard lock(books.mu);
  return books.counters;
}

const WorkerOptions& Worker::options() const noexcept {
  return impl_->opt;
}

std::string Worker::hostname() const {
  return impl_->hostname;
}
std::vector<std::string> Worker::queues() const {
  return impl_->consumer ? impl_->consumer->queues() : impl_->queues;
}
std::vector<std::string> Worker::registered() const {
  return impl_->app.task_names();
}

Json Worker::stats() const {
  Impl& s = *impl_;
  const auto& books = s.books;
  std::lock_guard lock(books.mu);
  Json total = Json::object();
  for (auto& [k, v] : books.totals) total[k] = v;
  const WorkerCounters& c = books.counters;
  return Json{{"pid", static_cast<long long>(getpid())},
              {"hostname", s.hostname},
              {"pool",
               {{"implementation", s.pool ? std::string(s.pool->name()) : s.opt.pool},
                {"max-concurrency", s.pool ? s.pool->concurrency() : 0}}},
              {"prefetch_count", s.prefetch_limit.load()},
              {"broker", {{"url", s.broker ? s.broker->url() : ""}}},
              {"total", total},
              {"counters",
               {{"received", c.received},
                {"succeeded", c.succeeded},
                {"failed", c.failed},
                {"retried", c.retried},
                {"revoked", c.revoked},
                {"dead_lettered", c.dead_lettered}}}};
}

Json Worker::active() const {
  const Impl& s = *impl_;
  Json out = Json::array();
  if (!s.lifecycle) return out;
  std::lock_guard lock(s.books.mu);
  for (auto& [id, job] : s.books.running)
    out.push_back(
        s.lifecycle->request_info(*job, !job->def->options.acks_late.value_or(s.opt.acks_late)));
  return out;
}

Json Worker::reserved() const {
  const Impl& s = *impl_;
  Json out = Json::array();
  if (!s.lifecycle) return out;
  for (auto& j : s.consumer->held()) out.push_back(s.lifecycle->request_info(*j, false));
  std::vector<detail::JobPtr> waiting;
  {
    std::lock_guard lock(s.books.mu);
    for (auto& [p, j] : s.books.waiting) waiting.push_back(j);
  }
  for (auto& j : waiting) {
    // Decoded here, for this answer only: a pool thread may be admitting
    // the job right now (only its delivery is settled).
    detail::Job peek;
    try {
      peek.msg = decode(j->delivery.envelope);
    } catch (const std::exception&) {
      continue;  // undecodable: the lifecycle dead-letters it when its turn comes
    }
    out.push_back(s.lifecycle->request_info(peek, false));
  }
  return out;
}

void Worker::revoke(const std::string& task_id, bool terminate) {
  revoke(task_id, terminate, SIGTERM);  // Celery's default signal
}

void Worker::revoke(const std::string& task_id, bool terminate, int signal) {
  {
    std::lock_guard lock(impl_->books.mu);
    impl_->books.revoked.insert(task_id);
  }
  if (terminate && impl_->pool) impl_->pool->terminate(task_id, signal);  // not under books.mu
}

void Worker::shutdown() {
  stop(false);
}

Json Worker::rate_limit(const std::string& task_name, const std::string& rate) {
  if (!impl_->app.find_task(task_name)) {
    spdlog::error("rate limit attempt for unknown task {}", task_name);
    return Json{{"error", "unknown task"}};
  }
  try {
    impl_->rate_limiter.set(task_name, rate);
  } catch (const ConfigError& e) {
    return Json{{"error", std::string("Invalid rate limit string: ") + e.what()}};
  }
  if (parse_rate(rate) == 0) {
    spdlog::info("rate limits disabled for tasks of type {}", task_name);
    return Json{{"ok", "rate limit disabled successfully"}};
  }
  spdlog::info("new rate limit for tasks of type {}: {}", task_name, rate);
  return Json{{"ok", "new rate limit set successfully"}};
}

Json Worker::conf() const {
  const Impl& s = *impl_;
  return detail::worker_conf(s.app, s.opt, s.pool ? s.pool->concurrency() : 0);
}

Json Worker::scheduled() const {
  const Impl& s = *impl_;
  if (!s.consumer) return Json::array();
  return detail::scheduled_requests(s.consumer->held_until(), *s.lifecycle);
}

Json Worker::revoked() const {
  std::lock_guard lock(impl_->books.mu);
  return detail::revoked_ids(impl_->books.revoked);
}

std::optional<Json> Worker::control(const std::string& method, const Json& arguments) {
  Impl& s = *impl_;
  if (!s.pool || !s.consumer) return std::nullopt;
  detail::LiveWorker live{*s.pool, *s.consumer, s.opt.prefetch_multiplier,
                          [&s](std::size_t n) { s.prefetch_limit = n; }};
  return detail::live_control(live, method, arguments);
}

}  // namespace celeriac::tq
