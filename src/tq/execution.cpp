// Running task bodies for the worker's pools (see detail/execution.hpp).
#include "celeriac/tq/detail/execution.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "celeriac/aio/future_await.hpp"
#include "celeriac/error.hpp"
#include "celeriac/mp/errors.hpp"
#include "celeriac/mp/fork_server.hpp"
#include "celeriac/mp/process_pool.hpp"
#include "celeriac/tq/app.hpp"
#include "worker/child_signals.hpp"

namespace celeriac::tq::detail {

namespace {

double autoretry_countdown(const TaskOptions& o, int retries) {
  if (o.retry_backoff <= 0) return o.default_retry_delay;
  double countdown =
      std::min(o.retry_backoff_max, o.retry_backoff * std::pow(2.0, static_cast<double>(retries)));
  if (!o.retry_jitter) return countdown;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, countdown)(rng);
}

bool matches_autoretry(const TaskDef& def, const std::exception_ptr& e) {
  if (!def.options.autoretry_for) return false;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return def.options.autoretry_for(x);
  } catch (...) {
    return false;
  }
}

}  // namespace

Outcome outcome_of_exception(const TaskDef& def, const TaskMessage& m, std::exception_ptr e) {
  Outcome out;
  try {
    std::rethrow_exception(e);
  } catch (const Retry& r) {
    out.retry.emplace(r);
    return out;
  } catch (...) {
  }
  if (matches_autoretry(def, e)) {
    out.retry.emplace(autoretry_countdown(def.options, m.retries), std::nullopt, e, "autoretry");
  } else {
    out.error = std::move(e);
  }
  return out;
}

Outcome run_here(Context& ctx, const TaskDef& def, const TaskMessage& m) {
  try {
    return Outcome{def.run(ctx, m.args, m.kwargs), std::nullopt, nullptr};
  } catch (...) {
    return outcome_of_exception(def, m, std::current_exception());
  }
}

aio::Task<Outcome> run_on_loop(Context& ctx, const TaskDef& def, const TaskMessage& m) {
  if (!def.run_async) co_return co_await aio::to_thread([&] { return run_here(ctx, def, m); });
  std::exception_ptr error;
  try {
    co_return Outcome{co_await def.run_async(ctx, m.args, m.kwargs), std::nullopt, nullptr};
  } catch (...) {
    error = std::current_exception();
  }
  co_return outcome_of_exception(def, m, std::move(error));
}

// ---- the processes pool ----

namespace {

// The app the children run tasks of: set before the fork server starts, so
// every child forked from it sees it (and the tasks registered by then).
App* child_app = nullptr;

// An Outcome crosses the pipe as JSON: {"ok": result} | {"retry": {...}} |
// {"error": {exc_type, exc_module, exc_message, traceback}}.
Json error_json(const TaskError& e) {
  return Json{{"exc_type", e.exc_type()},
              {"exc_module", e.exc_module()},
              {"exc_message", e.exc_message()},
              {"traceback", e.traceback()}};
}

TaskError error_from_json(const Json& j) {
  return TaskError(j.at("exc_type").get<std::string>(), j.at("exc_module").get<std::string>(),
                   j.at("exc_message"), j.value("traceback", std::string()));
}

std::string outcome_to_wire(const Outcome& o) {
  if (o.retry) {
    const Retry& r = *o.retry;
    Json retry{{"countdown", r.countdown() ? Json(*r.countdown()) : Json()},
               {"max_retries", r.max_retries() ? Json(*r.max_retries()) : Json()},
               {"exc", r.exc() ? error_json(to_task_error(r.exc())) : Json()},
               {"what", r.what()}};
    return dumps(Json{{"retry", std::move(retry)}});
  }
  if (o.error) return dumps(Json{{"error", error_json(to_task_error(o.error))}});
  return dumps(Json{{"ok", o.result}});
}

Outcome outcome_from_wire(const std::string& text) {
  Json j = loads(text);
  Outcome out;
  if (auto it = j.find("ok"); it != j.end()) {
    out.result = std::move(*it);
  } else if (auto r = j.find("retry"); r != j.end()) {
    const Json& x = *r;
    std::optional<double> countdown;
    std::optional<int> max_retries;
    if (!x.at("countdown").is_null()) countdown = x.at("countdown").get<double>();
    if (!x.at("max_retries").is_null()) max_retries = x.at("max_retries").get<int>();
    std::exception_ptr exc;
    if (!x.at("exc").is_null()) exc = std::make_exception_ptr(error_from_json(x.at("exc")));
    out.retry.emplace(countdown, max_retries, exc, x.at("what").get<std::string>());
  } else {
    out.error = std::make_exception_ptr(error_from_json(j.at("error")));
  }
  return out;
}

// Runs in a child of the pool: finds the task in the inherited app and runs it.
std::string run_in_child(std::string envelope, std::string hostname) {
  if (!child_app)
    throw Error(
        "the processes pool's children do not know the app: the fork server was started before the "
        "worker (call celeriac::mp::init() only after registering the tasks, or let the worker "
        "start it)");
  // The parent checked the size limit when it decoded the same bytes.
  TaskMessage m = decode(envelope, DecodeOptions{std::numeric_limits<std::size_t>::max()});
  const TaskDef* def = child_app->find_task(m.task);
  if (!def) {
    Outcome o;
    o.error = std::make_exception_ptr(TaskError("NotRegistered", "celery.exceptions",
                                                "'" + m.task +
                                                    "' is not registered in the processes pool's "
                                                    "children (registered after the fork server "
                                                    "started)"));
    return outcome_to_wire(o);
  }
  Context ctx(*child_app, *def, m, hostname);
  auto cancel = std::make_shared<Cancellation>();
  ctx.set_cancellation(cancel);
  child_task_started(m.id, cancel);
  std::string wire = outcome_to_wire(run_here(ctx, *def, m));
  child_task_done();
  return wire;
}

// Celery's prefork names for a child that died or overran its time limit.
Outcome lost_child(std::exception_ptr e, std::optional<std::chrono::milliseconds> limit) {
  Outcome out;
  try {
    std::rethrow_exception(e);
  } catch (const mp::WorkerDiedError& d) {
    out.error =
        std::make_exception_ptr(TaskError("WorkerLostError", "billiard.exceptions",
                                          std::string("Worker exited prematurely: ") + d.what()));
  } catch (const TimeoutError&) {
    double seconds = limit ? std::chrono::duration<double>(*limit).count() : 0.0;
    out.error = std::make_exception_ptr(
        TaskError("TimeLimitExceeded", "billiard.exceptions", Json::array({seconds})));
  } catch (const TaskError&) {
    out.error = std::current_exception();
  } catch (const std::exception& x) {
    out.error = std::make_exception_ptr(TaskError("RuntimeError", "builtins", x.what()));
  }
  return out;
}

}  // namespace

std::optional<std::chrono::milliseconds> time_limit_of(const TaskMessage& m) {
  if (!m.time_limit || *m.time_limit <= 0) return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(*m.time_limit * 1000.0));
}

void prepare_process_pool(App& app) {
  child_app = &app;
  init_child_table();  // before the fork server, so its children share it
  mp::init();
}

struct ProcessRunner::Impl {
  mp::ProcessPool pool;
  explicit Impl(mp::ProcessPoolOptions o) : pool(std::move(o)) {}
};

ProcessRunner::ProcessRunner(App& app, std::size_t workers, std::size_t max_tasks_per_child,
                             std::size_t max_memory_per_child) {
  prepare_process_pool(app);
  mp::ProcessPoolOptions o;
  o.max_workers = workers;
  o.max_tasks_per_child = max_tasks_per_child;
  o.max_memory_per_child = max_memory_per_child;
  o.prefetch = 1;  // a queued task must not wait behind a long one in a busy child
  impl_ = std::make_unique<Impl>(std::move(o));
}

ProcessRunner::~ProcessRunner() = default;

Outcome ProcessRunner::run(const std::string& envelope, const std::string& hostname,
                           std::optional<std::chrono::milliseconds> time_limit) {
  mp::TaskOptions o;
  if (time_limit) o.timeout = *time_limit;
  try {
    return outcome_from_wire(
        impl_->pool.submit_with(o, &run_in_child, envelope, hostname).result());
  } catch (...) {
    return lost_child(std::current_exception(), time_limit);
  }
}

void ProcessRunner::shutdown() {
  impl_->pool.shutdown(true);
}

}  // namespace celeriac::tq::detail
