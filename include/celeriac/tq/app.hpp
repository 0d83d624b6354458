// App: the task registry plus broker and backend connections; the entry
// point of the task queue (Celery's `Celery(...)` object).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "celeriac/tq/async_result.hpp"
#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/periodic_task.hpp"
#include "celeriac/tq/result_backend.hpp"
#include "celeriac/tq/routes.hpp"
#include "celeriac/tq/signature.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq {

class App;

/// App settings (Celery's configuration keys of the same meaning).
struct AppConfig {
  std::string broker_url;   ///< "" = sqlite:///celeriac.db
  std::string backend_url;  ///< "" = same as broker_url when it is sqlite/memory/redis
  /// Queue of calls without one ("celery", Celery's task_default_queue).
  std::string default_queue{kDefaultQueue};
  bool result_extended = false;  ///< store name/args/kwargs/worker/retries/queue
  /// Publish a task-sent event for every task sent (Celery's task_send_sent_event).
  bool task_send_sent_event = false;
};

/// A typed handle to a registered task: delay(), apply_async().
template <class R, class... A>
class TaskHandle {
 public:
  /// What get() returns: R, or void.
  using result_type = std::conditional_t<std::is_void_v<R>, void, R>;

  /// A handle on task `def` of `app`.
  TaskHandle(App& app, const TaskDef& def) : app_(&app), def_(&def) {}
  /// The task name.
  const std::string& name() const noexcept { return def_->name; }
  /// Sends the task with positional args (Celery's delay()).
  template <class... Args>
  AsyncResult<result_type> delay(Args&&... args) const;
  /// Sends with options; args as a JSON array and kwargs object.
  AsyncResult<result_type> apply_async(Json args, Json kwargs = Json::object(),
                                       const CallOptions& options = {}) const;
  /// Sends with options and typed positional args.
  template <class... Args>
  AsyncResult<result_type> apply_async_with(const CallOptions& options, Args&&... args) const;
  /// The definition (name, params, options, runner).
  const TaskDef& def() const noexcept { return *def_; }
  /// A signature of this task with positional args (Celery's add.s(2, 2)).
  template <class... Args>
  Signature s(Args&&... args) const {
    Json a = Json::array();
    (a.push_back(Json(std::forward<Args>(args))), ...);
    return Signature(def_->name, std::move(a)).bind(*app_);
  }
  /// The immutable signature: the parent's result is not prepended (add.si(2, 2)).
  template <class... Args>
  Signature si(Args&&... args) const {
    return s(std::forward<Args>(args)...).set_immutable();
  }

 private:
  App* app_;
  const TaskDef* def_;
};

namespace detail {
template <class R, class Tuple>
struct HandleFor;
template <class R, class... A>
struct HandleFor<R, std::tuple<A...>> {
  using type = TaskHandle<R, std::decay_t<A>...>;
};
class ResultWatcher;
}  // namespace detail

/// Options of App::main() (the command line).
struct MainOptions {
  bool with_worker = true;  ///< offer the `worker` verb (false for the generic tool)
  std::string program;      ///< program name shown in help ("" = argv[0])
};

/// The task queue application.
class App {
 public:
  /// App on the default embedded broker/backend (sqlite:///celeriac.db).
  App();
  /// App with these settings.
  explicit App(AppConfig config);
  /// App on `broker_url`, with `backend_url` ("" = same as the broker).
  App(std::string broker_url, std::string backend_url);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  /// Registers `fn` as task `name` with parameter names `params` (one per
  /// parameter after an optional leading Context&). Returns a typed handle.
  /// Throws ConfigError when the name is taken or params do not match.
  template <class F>
  auto task(std::string name, std::vector<std::string> params, F fn, TaskOptions options = {}) {
    using Traits = detail::FnTraits<std::decay_t<F>>;
    using Value = typename detail::TaskValue<typename Traits::result>::type;
    using Handle = typename detail::HandleFor<Value, detail::TaskArgs<F>>::type;
    TaskDef def;
    def.name = std::move(name);
    def.params = std::move(params);
    def.options = std::move(options);
    detail::bind_task(def, std::move(fn));
    return Handle(*this, register_task(std::move(def)));
  }
  /// Registers an already built definition (dynamic tasks).
  const TaskDef& register_task(TaskDef def);
  /// Routes calls of tasks matching `pattern` (exact name or glob such as
  /// "tasks.io.*") to `queue` when the call names no queue (Celery's
  /// task_routes); routes are checked in order, the first match wins.
  void route(std::string pattern, std::string queue) {
    router_.add(std::move(pattern), std::move(queue));
  }
  /// Adds a router function (checked in order with the patterns); what it
  /// throws fails the call and nothing is sent.
  void route(RouterFn fn) { router_.add(std::move(fn)); }
  /// The routes added so far.
  const Router& router() const noexcept { return router_; }
  /// The task named `name`, or nullptr.
  const TaskDef* find_task(std::string_view name) const;
  /// Registered names, sorted.
  std::vector<std::string> task_names() const;

  /// Sends task `name` (need not be registered here, e.g. a Python task).
  AsyncResult<Json> send_task(const std::string& name, Json args = Json::array(),
                              Json kwargs = Json::object(), const CallOptions& options = {});
  /// A signature of task `name` (need not be registered here), bound to this app.
  Signature signature(std::string name, Json args = Json::array(), Json kwargs = Json::object());
  /// Builds the message for a call (no I/O); used by send_task and tests.
  TaskMessage build_message(const std::string& name, Json args, Json kwargs,
                            const CallOptions& options) const;
  /// Publishes a built message (with the publish retry policy). Returns its
  /// id, or for a unique call (unique_for) whose twin is still waiting or
  /// running, the twin's id (and nothing is sent).
  std::string publish(const TaskMessage& message, const CallOptions& options = {});
  /// Publishes many messages in one broker batch: one round trip on Redis
  /// (atomic, exactly once even across a reconnect), one transaction on
  /// SQLite. Throws PublishError naming the task ids when the batch failed.
  void publish_many(const std::vector<TaskMessage>& messages);
  /// Sends one call of task `name` per element of `args_list` (each a JSON
  /// array of positional arguments) as one batch (see publish_many());
  /// returns their results in order.
  std::vector<AsyncResult<Json>> send_many(const std::string& name,
                                           const std::vector<Json>& args_list,
                                           const CallOptions& options = {});

  /// Adds a beat entry (Celery's add_periodic_task): `schedule` is a
  /// std::chrono duration or a tq::crontab(...); `call` what to send. Throws
  /// ConfigError naming the entry for a duplicate name or a bad field.
  /// `./app beat` and `./app worker -B` run them (docs/tq-beat.md).
  void add_periodic_task(Schedule schedule, TaskCall call, std::string name,
                         PeriodicOptions options = {});
  /// The beat entries added so far.
  std::vector<PeriodicEntry> periodic_tasks() const;

  /// A handle on an existing task id's result.
  template <class T = Json>
  AsyncResult<T> async_result(std::string id) {
    return AsyncResult<T>(*this, std::move(id));
  }

  /// The broker (created on first use from the URL).
  Broker& broker();
  /// The result backend (created on first use).
  ResultBackend& backend();
  /// The settings.
  const AppConfig& config() const noexcept { return config_; }
  /// Replace the URLs before first use (the CLI's --broker/--backend).
  void set_urls(const std::string& broker_url, const std::string& backend_url);

  /// Celery's command line: worker, call, result, purge, inspect, status.
  /// Returns the process exit code. See docs/tq.md.
  int main(int argc, char** argv, const MainOptions& options = {});

  /// internal: the result watcher behind AsyncResult
  detail::ResultWatcher& watcher();

 private:
  std::string publish_envelope(const TaskMessage& message, const CallOptions& options);

  AppConfig config_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<TaskDef>, std::less<>> tasks_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<ResultBackend> backend_;
  std::unique_ptr<detail::ResultWatcher> watcher_;
  std::vector<PeriodicEntry> periodic_;  // beat entries (add_periodic_task)
  Router router_;                        // task routes (route())
};

// ---- TaskHandle ----

/// Sends the task with positional args (Celery's delay()).
template <class R, class... A>
template <class... Args>
AsyncResult<typename TaskHandle<R, A...>::result_type> TaskHandle<R, A...>::delay(
    Args&&... args) const {
  return apply_async_with(CallOptions{}, std::forward<Args>(args)...);
}

/// Sends with options and typed positional args.
template <class R, class... A>
template <class... Args>
AsyncResult<typename TaskHandle<R, A...>::result_type> TaskHandle<R, A...>::apply_async_with(
    const CallOptions& options, Args&&... args) const {
  Json a = Json::array();
  (a.push_back(Json(std::forward<Args>(args))), ...);
  return apply_async(std::move(a), Json::object(), options);
}

template <class R, class... A>
AsyncResult<typename TaskHandle<R, A...>::result_type> TaskHandle<R, A...>::apply_async(
    Json args, Json kwargs, const CallOptions& options) const {
  CallOptions o = options;
  if (o.queue.empty()) o.queue = def_->options.queue;
  if (!o.ignore_result) o.ignore_result = def_->options.ignore_result;
  TaskMessage m = app_->build_message(def_->name, std::move(args), std::move(kwargs), o);
  // Register the watcher before publishing so a fast result is not missed.
  AsyncResult<result_type> r(*app_, m.id);
  std::string id = app_->publish(m, o);
  if (id != m.id) return AsyncResult<result_type>(*app_, std::move(id));  // a unique twin
  return r;
}

}  // namespace celeriac::tq
