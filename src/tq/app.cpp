#include "celeriac/tq/app.hpp"

#include "celeriac/tq/detail/event_sender.hpp"
#include "celeriac/tq/detail/result_watcher.hpp"
#include "celeriac/tq/rate_limit.hpp"
#include "celeriac/tq/unique.hpp"
#include "worker/time_limits.hpp"

#include <algorithm>
#include <condition_variable>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>

namespace celeriac::tq {

namespace detail {

ResultBackend& backend_of(App& app) {
  return app.backend();
}

}  // namespace detail

App::App() : App(AppConfig{}) {}

App::App(AppConfig config) : config_(std::move(config)) {
  // Validate URLs now so a bad one fails at construction, quoting it.
  if (!config_.broker_url.empty()) (void)Url::parse(config_.broker_url);
  if (!config_.backend_url.empty()) (void)Url::parse(config_.backend_url);
}

App::App(std::string broker_url, std::string backend_url)
    : App(AppConfig{std::move(broker_url), std::move(backend_url)}) {}

App::~App() {
  watcher_.reset();
  if (broker_) broker_->close();
  if (backend_) backend_->close();
}

void App::set_urls(const std::string& broker_url, const std::string& backend_url) {
  std::lock_guard lock(mu_);
  if (broker_ || backend_) throw ConfigError("App::set_urls: broker/backend already in use");
  if (!broker_url.empty()) {
    (void)Url::parse(broker_url);
    config_.broker_url = broker_url;
  }
  if (!backend_url.empty()) {
    (void)Url::parse(backend_url);
    config_.backend_url = backend_url;
  }
}

const TaskDef& App::register_task(TaskDef def) {
  if (def.name.empty()) throw ConfigError("task name must not be empty");
  if (!def.run) throw ConfigError("task '" + def.name + "' has no function");
  (void)parse_rate(def.options.rate_limit, "task '" + def.name + "' rate_limit");
  (void)parse_rate(def.options.global_rate_limit, "task '" + def.name + "' global_rate_limit");
  detail::check_time_limits("task '" + def.name + "'", def.options.soft_time_limit,
                            def.options.time_limit);
  std::lock_guard lock(mu_);
  if (tasks_.count(def.name)) throw ConfigError("task '" + def.name + "' is already registered");
  auto p = std::make_unique<TaskDef>(std::move(def));
  auto& ref = *p;
  tasks_.emplace(ref.name, std::move(p));
  return ref;
}

const TaskDef* App::find_task(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = tasks_.find(name);
  return it == tasks_.end() ? nullptr : it->second.get();
}

std::vector<std::string> App::task_names() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (auto& [k, v] : tasks_) out.push_back(k);
  return out;
}

Broker& App::broker() {
  std::lock_guard lock(mu_);
  if (!broker_) broker_ = make_broker(config_.broker_url);
  return *broker_;
}

ResultBackend& App::backend() {
  std::lock_guard lock(mu_);
  if (!backend_)
    backend_ = make_backend(config_.backend_url.empty() ? config_.broker_url : config_.backend_url);
  return *backend_;
}

detail::ResultWatcher& App::watcher() {
  std::lock_guard lock(mu_);
  if (!watcher_) watcher_ = std::make_unique<detail::ResultWatcher>(*this);
  return *watcher_;
}

TaskMessage App::build_message(const std::string& name, Json args, Json kwargs,
                               const CallOptions& o) const {
  if (name.empty()) throw ConfigError("task name must not be empty");
  if (!args.is_array())
    throw ConfigError("task '" + name + "': args must be a JSON array, got " + dumps(args));
  if (!kwargs.is_object())
    throw ConfigError("task '" + name + "': kwargs must be a JSON object, got " + dumps(kwargs));
  if (o.priority && (*o.priority < 0 || *o.priority > 9))
    throw ConfigError("task '" + name + "': priority " + std::to_string(*o.priority) +
                      " out of range 0-9");
  detail::check_time_limits("task '" + name + "' call", o.soft_time_limit, o.time_limit);
  TaskMessage m;
  m.queue =
      o.queue.empty() ? router_.route(name, args, kwargs).value_or(config_.default_queue) : o.queue;
  m.id = o.task_id.empty() ? make_uuid() : o.task_id;
  m.task = name;
  m.args = std::move(args);
  m.kwargs = std::move(kwargs);
  auto now = Clock::now();
  if (o.eta) {
    m.eta = o.eta;
  } else if (o.countdown) {
    m.eta = now + std::chrono::duration_cast<Clock::duration>(
                      std::chrono::duration<double>(*o.countdown));
  }
  if (o.expires) {
    m.expires = o.expires;
  } else if (o.expires_in) {
    m.expires = now + std::chrono::duration_cast<Clock::duration>(
                          std::chrono::duration<double>(*o.expires_in));
  }
  if (m.expires) {
    // kombu writes the per-message TTL in milliseconds (str(int(s * 1000))),
    // which is what AMQP's `expiration` property means.
    double secs = std::chrono::duration<double>(*m.expires - now).count();
    m.expiration = std::to_string(static_cast<long long>(std::max(0.0, secs) * 1000));
  }
  m.priority = o.priority.value_or(0);
  m.ignore_result = o.ignore_result.value_or(false);
  m.extra_headers = o.headers.is_object() ? o.headers : OrderedJson::object();
  m.time_limit = o.time_limit;
  m.soft_time_limit = o.soft_time_limit;
  m.parent_id = o.parent_id;
  m.root_id = o.root_id.value_or(m.id);
  m.shadow = o.shadow;
  m.lang = "py";  // Celery workers only check presence; "py" keeps Python peers' expectations
  m.delivery_tag = make_uuid();
  return m;
}

std::string App::publish(const TaskMessage& m, const CallOptions& o) {
  const TaskDef* def = find_task(m.task);
  std::optional<TaskMessage> unique;  // m with its unique key header
  if (double period = detail::unique_period(m, def, o); period > 0) {
    unique = m;
    if (auto twin = detail::claim_unique(broker(), *unique, def, period)) return *twin;
  }
  try {
    return publish_envelope(unique ? *unique : m, o);
  } catch (...) {
    if (unique) detail::release_unique(broker(), *unique);
    throw;
  }
}

std::string App::publish_envelope(const TaskMessage& m, const CallOptions& o) {
  std::string envelope = encode(m);
  int attempts = 0;
  double interval = o.retry_policy.interval_start;
  for (;;) {
    try {
      broker().publish(m.queue, m.priority, envelope);
      if (config_.task_send_sent_event) detail::send_task_sent(config_.broker_url, m, envelope);
      return m.id;
    } catch (const BrokerError& e) {
      if (!o.retry || attempts >= o.retry_policy.max_retries) throw;
      ++attempts;
      spdlog::warn("publish of {} failed ({}); retry {}/{} in {:.2f}s", m.id, e.what(), attempts,
                   o.retry_policy.max_retries, interval);
      std::this_thread::sleep_for(std::chrono::duration<double>(interval));
      interval = std::min(interval + o.retry_policy.interval_step, o.retry_policy.interval_max);
    }
  }
}

void App::publish_many(const std::vector<TaskMessage>& messages) {
  std::vector<Outgoing> out;
  out.reserve(messages.size());
  for (const auto& m : messages) out.push_back(Outgoing{m.queue, m.priority, encode(m)});
  try {
    broker().publish_many(out);
  } catch (const BrokerError& e) {
    std::vector<std::string> ids;
    ids.reserve(messages.size());
    for (const auto& m : messages) ids.push_back(m.id);
    throw PublishError(e.what(), std::move(ids));
  }
  if (config_.task_send_sent_event)
    for (std::size_t i = 0; i < messages.size(); ++i)
      detail::send_task_sent(config_.broker_url, messages[i], out[i].envelope);
}

std::vector<AsyncResult<Json>> App::send_many(const std::string& name,
                                              const std::vector<Json>& args_list,
                                              const CallOptions& options) {
  if (!options.task_id.empty())
    throw ConfigError("send_many('" + name +
                      "'): a task_id in the options would be shared by every call");
  std::vector<TaskMessage> messages;
  std::vector<AsyncResult<Json>> results;
  messages.reserve(args_list.size());
  results.reserve(args_list.size());
  for (const auto& args : args_list) {
    messages.push_back(build_message(name, args, Json::object(), options));
    results.emplace_back(*this, messages.back().id);  // watched before anything is published
  }
  publish_many(messages);
  return results;
}

AsyncResult<Json> App::send_task(const std::string& name, Json args, Json kwargs,
                                 const CallOptions& options) {
  TaskMessage m = build_message(name, std::move(args), std::move(kwargs), options);
  AsyncResult<Json> r(*this, m.id);
  std::string id = publish(m, options);
  if (id != m.id) return AsyncResult<Json>(*this, std::move(id));  // a unique twin
  return r;
}

void App::add_periodic_task(Schedule schedule, TaskCall call, std::string name,
                            PeriodicOptions options) {
  PeriodicEntry entry{std::move(name), std::move(schedule), std::move(call), std::move(options)};
  entry.validate();
  std::lock_guard lock(mu_);
  for (const auto& e : periodic_)
    if (e.name == entry.name)
      throw ConfigError("periodic task '" + entry.name +
                        "': duplicate entry name (names must be unique)");
  periodic_.push_back(std::move(entry));
}

std::vector<PeriodicEntry> App::periodic_tasks() const {
  std::lock_guard lock(mu_);
  return periodic_;
}

}  // namespace celeriac::tq
