#include "celeriac/tq/worker.hpp"

#include <unistd.h>

#include <array>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "celeriac/aio/event_loop.hpp"
#include "celeriac/tq/detail/execution.hpp"

namespace celeriac::tq {
std::string fmt_queues(const std::vector<std::string>& q);
namespace {

std::string default_hostname() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "localhost");
  return std::string("celery@") + host.data();
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string repr_exc(const TaskError& e) {
  std::string out = e.exc_type() + "(";
  const Json& m = e.exc_message();
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (i) out += ", ";
    if (m[i].is_string()) {
      out.push_back('\'');
      out += m[i].get_ref<const std::string&>();
      out.push_back('\'');
    } else {
      out += dumps(m[i]);
    }
  }
  return out + ")";
}

}  // namespace

struct Job {
  Delivery delivery;
  TaskMessage msg;
  const TaskDef* def = nullptr;
};

struct Worker::Impl {
  App& app;
  WorkerOptions opt;
  std::string hostname;
  std::vector<std::string> queues;
  std::unique_ptr<Broker> broker;
  std::size_t concurrency = 1;
  std::size_t limit = 4;  // prefetch limit (messages held, ETA-held excluded)

  std::mutex mu;  // guards everything below
  std::condition_variable cv;  // capacity, stop
  // Pool threads wait here: one job wakes one thread (no thundering herd
  // on the consumer's and everyone's condition variable).
  std::condition_variable jobs_cv;
  std::deque<std::shared_ptr<Job>> jobs;  // dispatched, waiting for a pool thread
  std::multimap<TimePoint, std::shared_ptr<Job>> eta_held;
  std::size_t in_flight = 0;  // reserved and not finished, excluding eta_held
  std::unordered_map<std::string, Json> active_info;
  std::unordered_set<std::string> revoked;
  std::map<std::string, std::uint64_t> totals;
  WorkerCounters counters;
  bool started = false;
  bool stopping = false;
  bool immediate = false;
  bool finished = false;
  std::condition_variable finished_cv;

  std::thread consumer;
  std::vector<std::thread> pool;  // threads/processes: the threads that run (or wait for) task bodies
  std::unique_ptr<detail::ProcessRunner> processes;  // processes pool
  aio::EventLoop* loop = nullptr;  // async pool: the loop its thread runs
  std::thread loop_thread;
  std::vector<std::unique_ptr<WorkerService>> services;

  Impl(App& a, WorkerOptions o) : app(a), opt(std::move(o)) {}

  // ---- events ----
  void emit(Json event) {
    if (services.empty()) return;
    for (auto& s : services) {
      try {
        s->on_task_event(event);
      } catch (const std::exception& e) {
        spdlog::warn("worker service event handler failed: {}", e.what());
      }
    }
  }

  Json request_info(const Job& j, bool acknowledged) const {
    return Json{{"id", j.msg.id},
                {"name", j.msg.task},
                {"args", j.msg.args},
                {"kwargs", j.msg.kwargs},
                {"type", j.msg.task},
                {"hostname", hostname},
                {"time_start", unix_now()},
                {"acknowledged", acknowledged},
                {"delivery_info", {{"exchange", j.msg.exchange}, {"routing_key", j.msg.queue}, {"priority", j.msg.priority}, {"redelivered", j.msg.redelivered}}},
                {"worker_pid", static_cast<long long>(getpid())}};
  }

  // ---- results ----
  ResultMeta make_meta(const TaskMessage& m, State state) {
    ResultMeta meta;
    meta.task_id = m.id;
    meta.status = state;
    if (is_ready(state)) meta.date_done = format_iso8601(Clock::now(), false);
    if (m.group) meta.group_id = m.group;
    if (m.parent_id) meta.parent_id = m.parent_id;
    if (app.config().result_extended) {
      meta.extended = OrderedJson::object();
      meta.extended["name"] = m.task;
      meta.extended["args"] = OrderedJson::parse(dumps(m.args));
      meta.extended["kwargs"] = OrderedJson::parse(dumps(m.kwargs));
      meta.extended["worker"] = hostname;
      meta.extended["retries"] = m.retries;
      meta.extended["queue"] = m.queue;
    }
    return meta;
  }

  bool should_store(const TaskMessage& m, const TaskDef* def) const {
    return !m.ignore_result && !(def && def->options.ignore_result);
  }

  void store(const ResultMeta& meta) {
    for (int attempt = 0;; ++attempt) {
      try {
        app.backend().store(meta);
        return;
      } catch (const std::exception& e) {
        if (attempt >= 5) {
          spdlog::error("cannot store result of {} ({}): {}", meta.task_id, to_string(meta.status), e.what());
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50 << attempt));
      }
    }
  }

  void store_error(const TaskMessage& m, const TaskError& err, const std::string& traceback) {
    ResultMeta meta = make_meta(m, err.state() == "REVOKED" ? State::Revoked : State::Failure);
    meta.result = loads(dumps(err.to_json()));
    if (!traceback.empty()) meta.traceback = traceback;
    store(meta);
  }

  std::string traceback_for(const TaskMessage& m, const TaskError& e) const {
    return "Traceback (most recent call last):\n  C++ task '" + m.task + "' [" + m.id + "] on " + hostname + "\n" +
           e.exc_type() + ": " + e.message() + "\n";
  }

  // ---- bad input ----
  void dead_letter(const Delivery& d, const std::string& reason, const std::optional<std::string>& id,
                   const std::optional<std::string>& name, const std::optional<TaskError>& error) {
    try {
      broker->dead_letter(d, reason);
    } catch (const std::exception& e) {
      spdlog::error("cannot dead-letter message from '{}': {}", d.queue, e.what());
    }
    if (id && error) {
      TaskMessage m;
      m.id = *id;
      m.task = name.value_or("");
      store_error(m, *error, error->exc_type() + ": " + error->message() + "\n");
    }
    spdlog::error("dead-lettered message from queue '{}' (task {} id {}): {}", d.queue, name.value_or("?"),
                  id.value_or("?"), reason);
    std::lock_guard lock(mu);
    ++counters.dead_lettered;
  }

  void revoke_now(const Job& j, const std::string& why) {
    try {
      broker->ack(j.delivery);
    } catch (const std::exception& e) {
      spdlog::warn("ack of revoked {} failed: {}", j.msg.id, e.what());
    }
    if (should_store(j.msg, j.def)) store_error(j.msg, task_revoked(why), "");
    spdlog::info("task {}[{}] {}", j.msg.task, j.msg.id, why == "expired" ? "expired: revoked" : "revoked");
    emit(Json{{"type", "task-revoked"}, {"uuid", j.msg.id}, {"terminated", false}, {"signum", nullptr}, {"expired", why == "expired"}});
    std::lock_guard lock(mu);
    ++counters.revoked;
  }

  // ---- consumer ----
  // Returns a job to dispatch now, or null when handled here.
  std::shared_ptr<Job> receive(Delivery d) {
    {
      std::lock_guard lock(mu);
      ++counters.received;
    }
    auto job = std::make_shared<Job>();
    try {
      job->msg = decode(d.envelope, DecodeOptions{opt.max_message_size});
    } catch (const MessageError& e) {
      dead_letter(d, e.what(), e.task_id(), e.task_name(),
                  TaskError("InvalidTaskError", "celery.exceptions", std::string(e.what())));
      return nullptr;
    }
    TaskMessage& m = job->msg;
    job->delivery = std::move(d);
    if (m.has_canvas()) {
      std::string why = "task " + m.task + "[" + m.id +
                        "] carries canvas work (callbacks/errbacks/chain/chord), which this worker does not run yet";
      dead_letter(job->delivery, why, m.id, m.task, TaskError("NotImplementedError", "builtins", why));
      return nullptr;
    }
    job->def = app.find_task(m.task);
    if (!job->def) {
      dead_letter(job->delivery, "unregistered task '" + m.task + "'", m.id, m.task, not_registered(m.task));
      return nullptr;
    }
    bool is_revoked;
    {
      std::lock_guard lock(mu);
      is_revoked = revoked.count(m.id) > 0;
    }
    if (is_revoked) {
      revoke_now(*job, "revoked");
      return nullptr;
    }
    if (m.expires && Clock::now() >= *m.expires) {
      revoke_now(*job, "expired");
      return nullptr;
    }
    if (!services.empty())
      emit(Json{{"type", "task-received"}, {"uuid", m.id}, {"name", m.task}, {"args", m.argsrepr},
                {"kwargs", m.kwargsrepr}, {"root_id", m.root_id}, {"parent_id", m.parent_id ? Json(*m.parent_id) : Json()},
                {"retries", m.retries}, {"eta", m.eta ? Json(format_iso8601(*m.eta)) : Json()},
                {"expires", m.expires ? Json(format_iso8601(*m.expires)) : Json()}});
    return job;
  }

  void consume_loop() {
    auto backoff = std::chrono::milliseconds(100);
    for (;;) {
      std::vector<std::shared_ptr<Job>> due;
      std::size_t capacity = 0;
      auto timeout = opt.poll_interval;
      {
        std::unique_lock lock(mu);
        if (stopping) break;
        auto now = Clock::now();
        while (!eta_held.empty() && eta_held.begin()->first <= now) {
          due.push_back(eta_held.begin()->second);
          eta_held.erase(eta_held.begin());
          ++in_flight;
        }
        if (!eta_held.empty()) {
          auto until = std::chrono::duration_cast<std::chrono::milliseconds>(eta_held.begin()->first - now) +
                       std::chrono::milliseconds(1);
          timeout = std::min(timeout, until);
        }
        capacity = in_flight >= limit ? 0 : limit - in_flight;
        // Reserve in batches of at least a quarter of the prefetch limit
        // while busy: one broker round trip per freed slot costs more than
        // the task itself for small tasks.
        const std::size_t batch_min = std::max<std::size_t>(1, limit / 4);
        auto room = [&] { return in_flight == 0 || in_flight + batch_min <= limit; };
        if (!room() && due.empty()) {
          cv.wait_for(lock, timeout, [&] { return stopping || room(); });
          continue;
        }
      }
      for (auto& j : due) dispatch(std::move(j));
      flush_acks();
      if (capacity == 0) continue;
      std::vector<Delivery> got;
      try {
        got = broker->reserve(queues, capacity, timeout);
        backoff = std::chrono::milliseconds(100);
      } catch (const std::exception& e) {
        spdlog::error("broker {}: {}; retrying in {} ms", broker->url(), e.what(), backoff.count());
        std::unique_lock lock(mu);
        cv.wait_for(lock, backoff, [&] { return stopping; });
        backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        continue;
      }
      for (auto& d : got) {
        auto job = receive(std::move(d));
        if (!job) continue;
        if (job->msg.eta && *job->msg.eta > Clock::now()) {
          std::lock_guard lock(mu);
          eta_held.emplace(*job->msg.eta, std::move(job));
          continue;
        }
        {
          std::lock_guard lock(mu);
          ++in_flight;
        }
        dispatch(std::move(job));
      }
    }
    shutdown_sequence();
  }

  void dispatch(std::shared_ptr<Job> job) {
    if (opt.pool == "solo") {
      run_job(*job);
      return;
    }
    if (loop) {
      loop->call_soon_threadsafe([this, job = std::move(job)]() mutable { loop->spawn(run_job_on_loop(std::move(job))); });
      return;
    }
    {
      std::lock_guard lock(mu);
      active_info[job->msg.id] = request_info(*job, false);
      jobs.push_back(std::move(job));
    }
    jobs_cv.notify_one();
  }

  void pool_loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mu);
        jobs_cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (stopping) return;  // queued jobs are requeued by shutdown_sequence
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      run_job(*job);
    }
  }

  // ---- execution ----
  // A job runs in three steps: begin_job (revoked/expired check, early ack,
  // STARTED), the body in the pool's way (detail::Outcome), finish_job
  // (result, retry or failure; late ack).
  void run_job(Job& j) {
    if (!begin_job(j)) return;
    auto t0 = std::chrono::steady_clock::now();
    Context ctx(app, *j.def, j.msg, hostname);
    detail::Outcome out = processes ? processes->run(j.msg, hostname, time_limit_of(j.msg))
                                    : detail::run_here(ctx, *j.def, j.msg);
    finish_job(j, std::move(out), t0);
  }

  // The async pool's version: the body is awaited on the worker's loop.
  aio::Task<void> run_job_on_loop(std::shared_ptr<Job> job) {
    if (!begin_job(*job)) co_return;
    auto t0 = std::chrono::steady_clock::now();
    Context ctx(app, *job->def, job->msg, hostname);
    detail::Outcome out = co_await detail::run_on_loop(ctx, *job->def, job->msg);
    finish_job(*job, std::move(out), t0);
  }

  static std::optional<std::chrono::milliseconds> time_limit_of(const TaskMessage& m) {
    if (!m.time_limit || *m.time_limit <= 0) return std::nullopt;
    return std::chrono::milliseconds(static_cast<std::int64_t>(*m.time_limit * 1000.0));
  }

  bool acks_late_of(const Job& j) const { return j.def->options.acks_late.value_or(opt.acks_late); }

  // The job leaves the worker's books (in flight, active).
  void job_done(const Job& j) {
    std::lock_guard lock(mu);
    active_info.erase(j.msg.id);
    --in_flight;
    cv.notify_all();
  }

  // False when the job was revoked or expired (then it is done already).
  bool begin_job(Job& j) {
    const TaskMessage& m = j.msg;
    bool acks_late = acks_late_of(j);
    bool revoked_now;
    {
      std::lock_guard lock(mu);
      revoked_now = revoked.count(m.id) > 0;
      active_info[m.id] = request_info(j, !acks_late);
    }
    if (revoked_now || (m.expires && Clock::now() >= *m.expires)) {
      revoke_now(j, revoked_now ? "revoked" : "expired");
      job_done(j);
      return false;
    }
    if (!acks_late) ack(j);
    if (j.def->options.track_started && should_store(m, j.def)) {
      ResultMeta started = make_meta(m, State::Started);
      started.result = Json{{"pid", static_cast<long long>(getpid())}, {"hostname", hostname}};
      store(started);
    }
    emit(Json{{"type", "task-started"}, {"uuid", m.id}});
    return true;
  }

  void finish_job(Job& j, detail::Outcome out, std::chrono::steady_clock::time_point t0) {
    const TaskMessage& m = j.msg;
    bool acks_late = acks_late_of(j);
    bool store_results = should_store(m, j.def);
    double runtime = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out.error && acks_late && opt.reject_on_worker_lost && is_worker_lost(out.error)) {
      requeue_lost(j);
      job_done(j);
      return;
    }
    if (out.retry) {
      do_retry(j, *out.retry, store_results);
    } else if (out.error) {
      fail_task(m, to_task_error(out.error), store_results, "raised");
    } else {
      if (store_results) {
        ResultMeta meta = make_meta(m, State::Success);
        meta.result = std::move(out.result);
        store(meta);
      }
      emit(Json{{"type", "task-succeeded"}, {"uuid", m.id}, {"result", "<result>"}, {"runtime", runtime}});
      std::lock_guard lock(mu);
      ++counters.succeeded;
      ++totals[m.task];
    }
    if (acks_late) ack(j);
    job_done(j);
  }

  static bool is_worker_lost(const std::exception_ptr& e) {
    try {
      std::rethrow_exception(e);
    } catch (const TaskError& te) {
      return te.exc_type() == "WorkerLostError";
    } catch (...) {
      return false;
    }
  }

  // reject_on_worker_lost: the child died, so the message goes back to its
  // queue (unacknowledged with acks_late) for another attempt.
  void requeue_lost(Job& j) {
    try {
      broker->requeue(j.delivery);
      spdlog::warn("task {}[{}]: worker process lost, message requeued (reject_on_worker_lost)", j.msg.task,
                   j.msg.id);
    } catch (const std::exception& e) {
      spdlog::error("cannot requeue {} after its worker process was lost: {}", j.msg.id, e.what());
    }
  }

  // Acks are batched (one broker transaction for up to kAckBatch messages);
  // the consumer flushes them every round, and before anything is restored.
  static constexpr std::size_t kAckBatch = 64;
  std::mutex ack_mu;
  std::vector<Delivery> ack_batch;

  void ack(Job& j) {
    std::vector<Delivery> full;
    {
      std::lock_guard lock(ack_mu);
      ack_batch.push_back(j.delivery);
      if (ack_batch.size() >= kAckBatch) full.swap(ack_batch);
    }
    if (!full.empty()) ack_now(full);
  }

  void flush_acks() {
    std::vector<Delivery> pending;
    {
      std::lock_guard lock(ack_mu);
      pending.swap(ack_batch);
    }
    if (!pending.empty()) ack_now(pending);
  }

  void ack_now(const std::vector<Delivery>& ds) {
    try {
      broker->ack_many(ds);
    } catch (const std::exception& e) {
      spdlog::error("ack of {} message(s) failed: {}", ds.size(), e.what());
    }
  }

  void do_retry(Job& j, const Retry& r, bool store_results) {
    const TaskMessage& m = j.msg;
    std::optional<int> max = r.max_retries() ? r.max_retries() : j.def->options.max_retries;
    if (max && m.retries >= *max) {
      TaskError te = r.exc() ? to_task_error(r.exc())
                             : TaskError("MaxRetriesExceededError", "celery.exceptions",
                                         "Can't retry " + m.task + "[" + m.id + "] args:" + dumps(m.args) +
                                             " kwargs:" + dumps(m.kwargs));
      fail_task(m, te, store_results, "failed after " + std::to_string(m.retries) + " retries");
      return;
    }
    double countdown = r.countdown().value_or(j.def->options.default_retry_delay);
    // RETRY is stored and announced before the new message exists, so the
    // next run's received/started/SUCCESS can never come before them.
    announce_retry(m, r, countdown, store_results);
    try {
      broker->publish(m.queue, m.priority, encode(retry_message(m, countdown)));
    } catch (const std::exception& e) {
      fail_task(m, TaskError("RuntimeError", "builtins", std::string("retry could not be published: ") + e.what()),
                store_results, "could not be retried");
      return;
    }
    spdlog::info("task {}[{}] retry {} in {}", m.task, m.id, m.retries + 1, fmt_seconds(countdown));
    std::lock_guard lock(mu);
    ++counters.retried;
  }

  // The republished message: same id, retries + 1, eta = now + countdown.
  static TaskMessage retry_message(const TaskMessage& m, double countdown) {
    TaskMessage next = m;
    next.retries = m.retries + 1;
    next.eta = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(countdown));
    next.parent_id = m.id;
    next.delivery_tag = make_uuid();
    next.redelivered = false;
    next.argsrepr.clear();
    next.kwargsrepr.clear();
    return next;
  }

  void announce_retry(const TaskMessage& m, const Retry& r, double countdown, bool store_results) {
    std::string exc_text;
    Json exc_json;
    if (r.exc()) {
      TaskError te = to_task_error(r.exc());
      exc_text = repr_exc(te);
      exc_json = loads(dumps(te.to_json()));
    }
    std::string tb = "Traceback (most recent call last):\n  C++ task '" + m.task + "' [" + m.id + "] on " + hostname +
                     "\ncelery.exceptions.Retry: Retry in " + fmt_seconds(countdown) + "\n";
    if (store_results) {
      ResultMeta meta = make_meta(m, State::Retry);
      meta.result = exc_json;
      meta.traceback = tb;
      meta.children = Json::array({Json::array({Json::array({m.id, nullptr}), nullptr})});
      store(meta);
    }
    emit(Json{{"type", "task-retried"}, {"uuid", m.id}, {"exception", exc_text.empty() ? "Retry" : exc_text}, {"traceback", tb}});
  }

  // Stores FAILURE (when results are kept), logs `what` and emits task-failed.
  void fail_task(const TaskMessage& m, const TaskError& te, bool store_results, const std::string& what) {
    std::string tb = traceback_for(m, te);
    if (store_results) store_error(m, te, tb);
    spdlog::error("task {}[{}] {}: {}: {}", m.task, m.id, what, te.exc_type(), te.message());
    emit(Json{{"type", "task-failed"}, {"uuid", m.id}, {"exception", repr_exc(te)}, {"traceback", tb}});
    std::lock_guard lock(mu);
    ++counters.failed;
  }

  static std::string fmt_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%gs", s);
    return buf;
  }

  // ---- shutdown ----
  // async pool: a thread running an event loop; dispatch() spawns each job on it.
  void start_loop() {
    std::promise<aio::EventLoop*> ready;
    auto started_loop = ready.get_future();
    loop_thread = std::thread([&ready] {
      aio::EventLoop l;
      ready.set_value(&l);
      l.run_forever();
    });
    loop = started_loop.get();
  }

  // Lets the tasks on the loop finish, then stops it.
  void stop_loop() {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight == 0; });
    }
    loop->stop();
    loop_thread.join();
  }

  void shutdown_sequence() {
    std::vector<std::shared_ptr<Job>> back;
    {
      std::lock_guard lock(mu);
      for (auto& j : jobs) back.push_back(j);
      jobs.clear();
      for (auto& [t, j] : eta_held) back.push_back(j);
      eta_held.clear();
    }
    cv.notify_all();
    jobs_cv.notify_all();
    for (auto& j : back) {
      try {
        broker->requeue(j->delivery);
      } catch (const std::exception& e) {
        spdlog::error("cannot put back {}: {}", j->msg.id, e.what());
      }
      std::lock_guard lock(mu);
      active_info.erase(j->msg.id);
    }
    for (auto& t : pool) t.join();  // running tasks finish
    if (processes) processes->shutdown();
    if (loop) stop_loop();
    for (auto& s : services) {
      try {
        s->stop();
      } catch (const std::exception& e) {
        spdlog::warn("worker service stop failed: {}", e.what());
      }
    }
    flush_acks();
    std::size_t restored = 0;
    try {
      restored = broker->restore_unacked();
    } catch (const std::exception& e) {
      spdlog::error("restore of unacknowledged messages failed: {}", e.what());
    }
    if (!back.empty() || restored)
      spdlog::info("{}: restored {} unacknowledged message(s)", hostname, back.size() + restored);
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

Worker::Worker(App& app, WorkerOptions options) : impl_(std::make_unique<Impl>(app, std::move(options))) {}

Worker::~Worker() {
  if (!impl_) return;
  bool need_stop;
  {
    std::lock_guard lock(impl_->mu);
    need_stop = impl_->started;
  }
  if (need_stop) {
    stop();
    if (impl_->consumer.joinable()) impl_->consumer.join();
  }
}

void Worker::start() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (s.started) throw InvalidStateError("worker already started");
  }
  static const std::set<std::string> pools{"threads", "processes", "async", "solo"};
  if (!pools.count(s.opt.pool))
    throw ConfigError("unknown pool '" + s.opt.pool + "' (expected threads, processes, async or solo)");
  if (s.opt.concurrency < 0) throw ConfigError("concurrency must be >= 1, got " + std::to_string(s.opt.concurrency));
  if (s.opt.prefetch_multiplier < 1)
    throw ConfigError("prefetch multiplier must be >= 1, got " + std::to_string(s.opt.prefetch_multiplier));
  s.hostname = s.opt.hostname.empty() ? default_hostname() : s.opt.hostname;
  s.queues = s.opt.queues.empty() ? std::vector<std::string>{s.app.config().default_queue} : s.opt.queues;
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  std::size_t default_concurrency = s.opt.pool == "async" ? kDefaultAsyncConcurrency : hw;
  s.concurrency = s.opt.pool == "solo" ? 1 : (s.opt.concurrency > 0 ? static_cast<std::size_t>(s.opt.concurrency) : default_concurrency);
  // The fork server starts before this worker has any thread of its own.
  if (s.opt.pool == "processes")
    s.processes = std::make_unique<detail::ProcessRunner>(s.app, s.concurrency, s.opt.max_tasks_per_child);
  s.limit = s.concurrency * static_cast<std::size_t>(s.opt.prefetch_multiplier);
  s.broker = make_broker(s.app.config().broker_url);
  (void)s.app.backend();
  try {
    std::size_t n = s.broker->restore_stale(s.opt.visibility_timeout);
    if (n) spdlog::info("{}: restored {} message(s) older than the visibility timeout", s.hostname, n);
  } catch (const std::exception& e) {
    spdlog::warn("restore of stale messages failed: {}", e.what());
  }
  Url url = Url::parse(s.app.config().broker_url.empty() ? kDefaultUrl : s.app.config().broker_url);
  for (auto& f : worker_services(url.scheme)) {
    try {
      s.services.push_back(f(url, *this));
    } catch (const std::exception& e) {
      spdlog::error("worker service failed to start: {}", e.what());
    }
  }
  {
    std::lock_guard lock(s.mu);
    s.started = true;
  }
  if (s.opt.pool == "threads" || s.opt.pool == "processes")
    for (std::size_t i = 0; i < s.concurrency; ++i) s.pool.emplace_back([&s] { s.pool_loop(); });
  if (s.opt.pool == "async") s.start_loop();
  s.consumer = std::thread([&s] { s.consume_loop(); });
  spdlog::info("{} ready: pool={} concurrency={} queues={} broker={}", s.hostname, s.opt.pool, s.concurrency,
               fmt_queues(s.queues), s.broker->url());
}

void Worker::stop(bool immediate) {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (!s.started) return;
    s.stopping = true;
    s.immediate = s.immediate || immediate;
  }
  s.cv.notify_all();
  s.jobs_cv.notify_all();
  if (immediate) {
    // Put back everything not acknowledged now; running tasks cannot be
    // interrupted, the caller (CLI) exits the process next.
    s.flush_acks();
    try {
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
  if (ok && s.consumer.joinable() && s.consumer.get_id() != std::this_thread::get_id()) s.consumer.join();
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
  std::lock_guard lock(impl_->mu);
  return impl_->counters;
}

const WorkerOptions& Worker::options() const noexcept { return impl_->opt; }

std::string Worker::hostname() const { return impl_->hostname; }
std::vector<std::string> Worker::queues() const { return impl_->queues; }
std::vector<std::string> Worker::registered() const { return impl_->app.task_names(); }

Json Worker::stats() const {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  Json total = Json::object();
  for (auto& [k, v] : s.totals) total[k] = v;
  return Json{{"pid", static_cast<long long>(getpid())},
              {"hostname", s.hostname},
              {"pool", {{"implementation", s.opt.pool}, {"max-concurrency", s.concurrency}}},
              {"prefetch_count", s.limit},
              {"broker", {{"url", s.broker ? s.broker->url() : ""}}},
              {"total", total},
              {"counters",
               {{"received", s.counters.received},
                {"succeeded", s.counters.succeeded},
                {"failed", s.counters.failed},
                {"retried", s.counters.retried},
                {"revoked", s.counters.revoked},
                {"dead_lettered", s.counters.dead_lettered}}}};
}

Json Worker::active() const {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  Json out = Json::array();
  std::unordered_set<std::string> queued;
  for (auto& j : s.jobs) queued.insert(j->msg.id);
  for (auto& [id, info] : s.active_info)
    if (!queued.count(id)) out.push_back(info);
  return out;
}

Json Worker::reserved() const {
  Impl& s = *impl_;
  std::lock_guard lock(s.mu);
  Json out = Json::array();
  for (auto& j : s.jobs) out.push_back(s.request_info(*j, false));
  for (auto& [t, j] : s.eta_held) out.push_back(s.request_info(*j, false));
  return out;
}

void Worker::revoke(const std::string& task_id, bool terminate) {
  (void)terminate;
  std::lock_guard lock(impl_->mu);
  impl_->revoked.insert(task_id);
}

void Worker::shutdown() { stop(false); }

std::string fmt_queues(const std::vector<std::string>& q) {
  std::string s;
  for (auto& x : q) s += (s.empty() ? "" : ",") + x;
  return s;
}

}  // namespace celeriac::tq
