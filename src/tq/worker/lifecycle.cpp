#include "lifecycle.hpp"

#include <unistd.h>

#include <cstdio>

#include <spdlog/spdlog.h>

#include "../canvas/builtins.hpp"
#include "../canvas/worker_steps.hpp"
#include "celeriac/tq/unique.hpp"

namespace celeriac::tq::detail {

namespace {

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

std::string fmt_seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", s);
  return buf;
}

// True when `e` holds a TaskError that `pred` accepts.
template <class Pred>
bool task_error_is(const std::exception_ptr& e, Pred pred) {
  try {
    std::rethrow_exception(e);
  } catch (const TaskError& te) {
    return pred(te);
  } catch (...) {
    return false;
  }
}

bool is_worker_lost(const std::exception_ptr& e) {
  return task_error_is(e, [](const TaskError& te) { return te.exc_type() == "WorkerLostError"; });
}

bool is_revoked(const std::exception_ptr& e) {
  return task_error_is(e, [](const TaskError& te) { return te.state() == "REVOKED"; });
}

// The republished message of a retry: same id, retries + 1, eta = now + countdown.
TaskMessage retry_message(const TaskMessage& m, double countdown) {
  TaskMessage next = m;
  next.retries = m.retries + 1;
  next.eta = Clock::now() +
             std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(countdown));
  next.parent_id = m.id;
  next.delivery_tag = make_uuid();
  next.redelivered = false;
  next.argsrepr.clear();
  next.kwargsrepr.clear();
  return next;
}

}  // namespace

JobLifecycle::JobLifecycle(App& app, Broker& broker, WorkerBooks& books, LifecycleSettings settings)
    : app_(app),
      broker_(broker),
      settings_(std::move(settings)),
      writer_(app.backend(), broker),
      books_(books) {}

void JobLifecycle::stop_services() {
  for (auto& s : services_) {
    try {
      s->stop();
    } catch (const std::exception& e) {
      spdlog::warn("worker service stop failed: {}", e.what());
    }
  }
}

void JobLifecycle::emit(const Json& event) {
  for (auto& s : services_) {
    try {
      s->on_task_event(event);
    } catch (const std::exception& e) {
      spdlog::warn("worker service event handler failed: {}", e.what());
    }
  }
}

void JobLifecycle::count(std::uint64_t WorkerCounters::*counter) {
  std::lock_guard lock(books_.mu);
  ++(books_.counters.*counter);
}

Json JobLifecycle::request_info(const Job& j, bool acknowledged) const {
  return Json{{"id", j.msg.id},
              {"name", j.msg.task},
              {"args", j.msg.args},
              {"kwargs", j.msg.kwargs},
              {"type", j.msg.task},
              {"hostname", settings_.hostname},
              {"time_start", unix_now()},
              {"acknowledged", acknowledged},
              {"delivery_info",
               {{"exchange", j.msg.exchange},
                {"routing_key", j.msg.queue},
                {"priority", j.msg.priority},
                {"redelivered", j.msg.redelivered}}},
              {"worker_pid", static_cast<long long>(getpid())}};
}

// ---- results ----

ResultMeta JobLifecycle::make_meta(const TaskMessage& m, State state) const {
  ResultMeta meta;
  meta.task_id = m.id;
  meta.status = state;
  if (is_ready(state)) meta.date_done = format_iso8601(Clock::now(), false);
  if (m.group) meta.group_id = m.group;
  if (m.parent_id) meta.parent_id = m.parent_id;
  if (app_.config().result_extended) {
    meta.extended = OrderedJson::object();
    meta.extended["name"] = m.task;
    meta.extended["args"] = OrderedJson(m.args);
    meta.extended["kwargs"] = OrderedJson(m.kwargs);
    meta.extended["worker"] = settings_.hostname;
    meta.extended["retries"] = m.retries;
    meta.extended["queue"] = m.queue;
  }
  return meta;
}

ResultMeta JobLifecycle::error_meta(const TaskMessage& m, const TaskError& err,
                                    const std::string& traceback) const {
  ResultMeta meta = make_meta(m, err.state() == "REVOKED" ? State::Revoked : State::Failure);
  meta.result = Json(err.to_json());
  if (!traceback.empty()) meta.traceback = traceback;
  return meta;
}

std::string JobLifecycle::traceback_for(const TaskMessage& m, const TaskError& e) const {
  return "Traceback (most recent call last):\n  C++ task '" + m.task + "' [" + m.id + "] on " +
         settings_.hostname + "\n" + e.exc_type() + ": " + e.message() + "\n";
}

void JobLifecycle::ack(const Job& j) {
  try {
    broker_.ack(j.delivery);
  } catch (const std::exception& e) {
    spdlog::error("ack of {} failed: {}", j.msg.id, e.what());
  }
}

// ---- admit ----

JobLifecycle::Admission JobLifecycle::admit(const JobPtr& job) {
  count(&WorkerCounters::received);
  const Delivery& d = job->delivery;
  try {
    job->msg = decode(d.envelope, DecodeOptions{settings_.max_message_size});
  } catch (const MessageError& e) {
    dead_letter(d, e.what(), e.task_id(), e.task_name(),
                TaskError("InvalidTaskError", "celery.exceptions", std::string(e.what())));
    return Admission::done;
  }
  TaskMessage& m = job->msg;
  if (std::string why = m.has_canvas() ? canvas::check_embed(m) : ""; !why.empty()) {
    TaskError err("ValueError", "builtins", why);
    dead_letter(d, why, m.id, m.task, err);
    canvas::on_rejected(app_, m, error_meta(m, err, ""));
    return Admission::done;
  }
  const TaskDef* def = app_.find_task(m.task);
  if (!def) def = canvas::builtin_task(app_, m.task);
  if (!def) {
    dead_letter(d, "unregistered task '" + m.task + "'", m.id, m.task, not_registered(m.task));
    if (m.has_canvas()) canvas::on_rejected(app_, m, error_meta(m, not_registered(m.task), ""));
    return Admission::done;
  }
  job->def = def;
  if (has_services())
    emit(Json{{"type", "task-received"},
              {"uuid", m.id},
              {"name", m.task},
              {"args", m.argsrepr},
              {"kwargs", m.kwargsrepr},
              {"root_id", m.root_id},
              {"parent_id", m.parent_id ? Json(*m.parent_id) : Json()},
              {"retries", m.retries},
              {"eta", m.eta ? Json(format_iso8601(*m.eta)) : Json()},
              {"expires", m.expires ? Json(format_iso8601(*m.expires)) : Json()}});
  if (m.eta && *m.eta > Clock::now() && eta_ahead_) {
    eta_ahead_(job);
    return Admission::held;
  }
  return Admission::run;
}

void JobLifecycle::dead_letter(const Delivery& d, const std::string& reason,
                               const std::optional<std::string>& id,
                               const std::optional<std::string>& name,
                               const std::optional<TaskError>& error) {
  try {
    broker_.dead_letter(d, reason);
  } catch (const std::exception& e) {
    spdlog::error("cannot dead-letter message from '{}': {}", d.queue, e.what());
  }
  if (id && error) {
    TaskMessage m;
    m.id = *id;
    m.task = name.value_or("");
    writer_.write(error_meta(m, *error, error->exc_type() + ": " + error->message() + "\n"));
  }
  spdlog::error("dead-lettered message from queue '{}' (task {} id {}): {}", d.queue,
                name.value_or("?"), id.value_or("?"), reason);
  count(&WorkerCounters::dead_lettered);
}

void JobLifecycle::revoke(Job& j, const std::string& why) {
  const bool terminated = why == "terminated";
  release_unique(broker_, j.msg);
  if (!terminated || acks_late(j)) ack(j);  // a started task was acked already unless late
  if (should_store(j.msg, j.def)) writer_.write(error_meta(j.msg, task_revoked(why), ""));
  if (j.msg.has_canvas())
    canvas::on_ready(app_, j.msg, State::Revoked, Json(task_revoked(why).to_json()));
  const int signum = j.terminated_signal.load();
  spdlog::info("task {}[{}] {}", j.msg.task, j.msg.id,
               why == "expired" ? "expired: revoked"
               : terminated     ? "terminated (signal " + std::to_string(signum) + "): revoked"
                                : "revoked");
  if (has_services())
    emit(Json{{"type", "task-revoked"},
              {"uuid", j.msg.id},
              {"terminated", terminated},
              {"signum", terminated ? Json(signum) : Json()},
              {"expired", why == "expired"}});
  count(&WorkerCounters::revoked);
}

// ---- begin / finish ----

void JobLifecycle::release(const Job& j) {
  if (j.def) {
    std::lock_guard lock(books_.mu);
    books_.running.erase(j.msg.id);
  }
  if (released_) released_();
}

void JobLifecycle::put_back(Job& j) {
  try {
    broker_.requeue(j.delivery);
  } catch (const std::exception& e) {
    spdlog::error("cannot put back {}: {}", j.msg.id, e.what());
  }
}

void JobLifecycle::dispatched(const std::vector<JobPtr>& jobs) {
  std::lock_guard lock(books_.mu);
  for (const auto& j : jobs) books_.waiting.emplace(j.get(), j);
}

bool JobLifecycle::begin(const JobPtr& job) {
  Job& j = *job;
  {
    std::lock_guard lock(books_.mu);
    books_.waiting.erase(&j);
  }
  if (stopping_) {
    put_back(j);
    release(j);
    return false;
  }
  if (!j.def) {
    switch (admit(job)) {
      case Admission::run:
        break;
      case Admission::held:
        return false;  // the consumer holds it; its window slot is free
      case Admission::done:
        release(j);
        return false;
    }
  }
  if (limiter_ && rate_hold_ && !j.rate_slot_taken) {
    if (auto until = limiter_->take(*j.def, broker_, j.rate_slot_taken)) {
      rate_hold_(job, *until);
      return false;  // off the pool until its start slot
    }
  }
  const TaskMessage& m = j.msg;
  bool revoked_now;
  {
    std::lock_guard lock(books_.mu);
    revoked_now = books_.revoked.count(m.id) > 0;
    if (!revoked_now) books_.running[m.id] = job;
  }
  if (revoked_now || (m.expires && Clock::now() >= *m.expires)) {
    revoke(j, revoked_now ? "revoked" : "expired");
    release(j);
    return false;
  }
  if (!acks_late(j)) ack(j);
  if (j.def->options.track_started && should_store(m, j.def)) {
    ResultMeta started = make_meta(m, State::Started);
    started.result =
        Json{{"pid", static_cast<long long>(getpid())}, {"hostname", settings_.hostname}};
    writer_.write(std::move(started));
  }
  if (has_services()) emit(Json{{"type", "task-started"}, {"uuid", m.id}});
  j.started = std::chrono::steady_clock::now();
  return true;
}

void JobLifecycle::finish(Job& j, Outcome out) {
  const bool store_results = should_store(j.msg, j.def);
  double runtime =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - j.started).count();
  if (out.error && acks_late(j) && settings_.reject_on_worker_lost && is_worker_lost(out.error)) {
    requeue_lost(j);
  } else if (out.error && j.terminated_signal.load() != 0 && is_revoked(out.error)) {
    revoke(j, "terminated");  // revoke --terminate: stored REVOKED at once
  } else if (out.retry) {
    retry(j, *out.retry, store_results);
  } else if (out.error) {
    fail(j.msg, to_task_error(out.error), store_results, "raised",
         acks_late(j) ? std::optional<Delivery>(j.delivery) : std::nullopt);
  } else {
    succeed(j, std::move(out.result), runtime);
  }
  release(j);
}

void JobLifecycle::succeed(Job& j, Json result, double runtime) {
  const TaskMessage& m = j.msg;
  release_unique(broker_, m);  // the call is over: the same call may be sent again
  std::optional<Delivery> late = acks_late(j) ? std::optional<Delivery>(j.delivery) : std::nullopt;
  Json children;
  if (m.has_canvas()) {  // callbacks and the next chain step go out before the result is stored
    try {
      children = canvas::on_success(app_, m, result);
    } catch (const std::exception& e) {
      fail(m, TaskError("RuntimeError", "builtins", std::string("workflow: ") + e.what()),
           should_store(m, j.def), "could not continue its workflow", std::move(late));
      return;
    }
  }
  if (m.chord.is_object()) {  // a chord part reports after its result is stored, before the ack
    if (should_store(m, j.def))
      writer_.write_now(canvas::with_children(make_meta(m, State::Success), result, children));
    canvas::on_ready(app_, m, State::Success, result);
    if (late) ack(j);
  } else if (should_store(m, j.def)) {
    ResultMeta meta = make_meta(m, State::Success);
    meta.result = std::move(result);
    if (children.is_array()) meta.children = std::move(children);
    writer_.write(std::move(meta), std::move(late));
  } else if (late) {
    ack(j);
  }
  if (has_services())
    emit(Json{
        {"type", "task-succeeded"}, {"uuid", m.id}, {"result", "<result>"}, {"runtime", runtime}});
  std::lock_guard lock(books_.mu);
  ++books_.counters.succeeded;
  ++books_.totals[m.task];
}

// Stores FAILURE (when results are kept; then acks `ack_after`), logs
// `what` and emits task-failed.
void JobLifecycle::fail(const TaskMessage& m, const TaskError& te, bool store_results,
                        const std::string& what, std::optional<Delivery> ack_after) {
  release_unique(broker_, m);
  std::string tb = traceback_for(m, te);
  if (m.has_canvas()) {  // stored first; then the chord part, the chain's steps, the errbacks
    ResultMeta meta = error_meta(m, te, tb);
    if (store_results) writer_.write_now(meta);
    canvas::on_ready(app_, m, meta.status, meta.result);
    canvas::on_failure(app_, m, meta, true);
    store_results = false;
  }
  if (store_results) {
    writer_.write(error_meta(m, te, tb), std::move(ack_after));
  } else if (ack_after) {
    try {
      broker_.ack(*ack_after);
    } catch (const std::exception& e) {
      spdlog::error("ack of {} failed: {}", m.id, e.what());
    }
  }
  spdlog::error("task {}[{}] {}: {}: {}", m.task, m.id, what, te.exc_type(), te.message());
  if (has_services())
    emit(Json{
        {"type", "task-failed"}, {"uuid", m.id}, {"exception", repr_exc(te)}, {"traceback", tb}});
  count(&WorkerCounters::failed);
}

void JobLifecycle::retry(Job& j, const Retry& r, bool store_results) {
  const TaskMessage& m = j.msg;
  std::optional<Delivery> late = acks_late(j) ? std::optional<Delivery>(j.delivery) : std::nullopt;
  std::optional<int> max = r.max_retries() ? r.max_retries() : j.def->options.max_retries;
  if (max && m.retries >= *max) {
    TaskError te = r.exc()
                       ? to_task_error(r.exc())
                       : TaskError("MaxRetriesExceededError", "celery.exceptions",
                                   "Can't retry " + m.task + "[" + m.id +
                                       "] args:" + dumps(m.args) + " kwargs:" + dumps(m.kwargs));
    fail(m, te, store_results, "failed after " + std::to_string(m.retries) + " retries",
         std::move(late));
    return;
  }
  double countdown = r.countdown().value_or(j.def->options.default_retry_delay);
  std::string exc_text = r.exc() ? repr_exc(to_task_error(r.exc())) : "";
  std::string tb = "Traceback (most recent call last):\n  C++ task '" + m.task + "' [" + m.id +
                   "] on " + settings_.hostname + "\ncelery.exceptions.Retry: Retry in " +
                   fmt_seconds(countdown) + "\n";
  // RETRY is stored and announced before the new message exists, so the
  // next run's received/started/SUCCESS can never come before them.
  if (store_results) {
    ResultMeta meta = make_meta(m, State::Retry);
    meta.result = r.exc() ? Json(to_task_error(r.exc()).to_json()) : Json();
    meta.traceback = tb;
    meta.children = Json::array({Json::array({Json::array({m.id, nullptr}), nullptr})});
    writer_.write_now(std::move(meta));
  }
  if (has_services())
    emit(Json{{"type", "task-retried"},
              {"uuid", m.id},
              {"exception", exc_text.empty() ? "Retry" : exc_text},
              {"traceback", tb}});
  try {
    broker_.publish(m.queue, m.priority, encode(retry_message(m, countdown)));
  } catch (const std::exception& e) {
    fail(m,
         TaskError("RuntimeError", "builtins",
                   std::string("retry could not be published: ") + e.what()),
         store_results, "could not be retried", std::move(late));
    return;
  }
  if (late) ack(j);
  spdlog::info("task {}[{}] retry {} in {}", m.task, m.id, m.retries + 1, fmt_seconds(countdown));
  count(&WorkerCounters::retried);
}

// reject_on_worker_lost: the child died, so the message goes back to its
// queue (unacknowledged with acks_late) for another attempt.
void JobLifecycle::requeue_lost(Job& j) {
  try {
    broker_.requeue(j.delivery);
    spdlog::warn("task {}[{}]: worker process lost, message requeued (reject_on_worker_lost)",
                 j.msg.task, j.msg.id);
  } catch (const std::exception& e) {
    spdlog::error("cannot requeue {} after its worker process was lost: {}", j.msg.id, e.what());
  }
}

}  // namespace celeriac::tq::detail
