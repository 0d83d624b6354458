#include "celeriac/tq/app.hpp"

#include <algorithm>
#include <condition_variable>
#include <system_error>
#include <thread>

#include <spdlog/spdlog.h>

namespace celeriac::tq {

namespace detail {

std::string json_type_name(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "None";
    case Json::value_t::boolean: return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "int";
    case Json::value_t::number_float: return "float";
    case Json::value_t::string: return "str";
    case Json::value_t::array: return "list";
    case Json::value_t::object: return "dict";
    default: return j.type_name();
  }
}

std::vector<const Json*> bind_arguments(const std::string& task, const std::vector<std::string>& params,
                                        const Json& args, const Json& kwargs) {
  if (!args.is_array()) throw type_error(task + "() positional arguments must be a list, got " + json_type_name(args));
  if (!kwargs.is_object())
    throw type_error(task + "() keyword arguments must be a dict, got " + json_type_name(kwargs));
  const std::size_t n = params.size();
  if (args.size() > n)
    throw type_error(task + "() takes " + std::to_string(n) + " positional argument" + (n == 1 ? "" : "s") +
                     " but " + std::to_string(args.size()) + (args.size() == 1 ? " was" : " were") + " given");
  std::vector<const Json*> values(n, nullptr);
  for (std::size_t i = 0; i < args.size(); ++i) values[i] = &args[i];
  for (auto it = kwargs.begin(); it != kwargs.end(); ++it) {
    auto p = std::find(params.begin(), params.end(), it.key());
    if (p == params.end()) throw type_error(task + "() got an unexpected keyword argument '" + it.key() + "'");
    auto idx = static_cast<std::size_t>(p - params.begin());
    if (values[idx]) throw type_error(task + "() got multiple values for argument '" + it.key() + "'");
    values[idx] = &it.value();
  }
  std::vector<std::string> missing;
  for (std::size_t i = 0; i < n; ++i)
    if (!values[i]) missing.push_back(params[i]);
  if (!missing.empty()) {
    std::string list;
    for (std::size_t i = 0; i < missing.size(); ++i) {
      if (i) list += (i + 1 == missing.size()) ? (missing.size() > 2 ? ", and " : " and ") : ", ";
      list += "'" + missing[i] + "'";
    }
    throw type_error(task + "() missing " + std::to_string(missing.size()) + " required argument" +
                     (missing.size() == 1 ? "" : "s") + ": " + list);
  }
  return values;
}

TaskError error_from_meta(const ResultMeta& m) {
  std::string state(to_string(m.status));
  const Json& r = m.result;
  if (r.is_object() && r.contains("exc_type")) {
    std::string type = r["exc_type"].is_string() ? r["exc_type"].get<std::string>() : "Exception";
    std::string module =
        r.contains("exc_module") && r["exc_module"].is_string() ? r["exc_module"].get<std::string>() : "builtins";
    Json msg = r.contains("exc_message") ? r["exc_message"] : Json::array();
    return TaskError(type, module, msg, m.traceback.value_or(""), state);
  }
  return TaskError("Exception", "builtins", r.is_string() ? r : Json(dumps(r)), m.traceback.value_or(""), state);
}

// Completes AsyncResults when their metas become ready.
class ResultWatcher {
 public:
  explicit ResultWatcher(App& app) : app_(app), thread_([this] { loop(); }) {}
  ~ResultWatcher() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void add(const std::string& id, std::function<void(const ResultMeta&)> on_ready, std::function<bool()> abandoned) {
    {
      std::lock_guard lock(mu_);
      fresh_.push_back(Entry{id, std::move(on_ready), std::move(abandoned)});
    }
    cv_.notify_all();
  }

 private:
  struct Entry {
    std::string id;
    std::function<void(const ResultMeta&)> on_ready;
    std::function<bool()> abandoned;
  };

  void loop() {
    std::vector<Entry> pending;
    std::uint64_t cursor = 0;
    bool poll = true;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        if (pending.empty() && fresh_.empty())
          cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_ || !fresh_.empty(); });
        if (stop_) return;
        if (!fresh_.empty()) {
          poll = true;
          for (auto& e : fresh_) pending.push_back(std::move(e));
          fresh_.clear();
        }
      }
      if (pending.empty()) continue;
      try {
        ResultBackend& backend = app_.backend();
        if (poll) {
          std::vector<std::string> ids;
          ids.reserve(pending.size());
          for (auto& e : pending) ids.push_back(e.id);
          auto metas = backend.get_many(ids);
          std::vector<Entry> still;
          still.reserve(pending.size());
          for (std::size_t i = 0; i < pending.size(); ++i) {
            if (metas[i] && is_ready(metas[i]->status)) {
              pending[i].on_ready(*metas[i]);
            } else if (!pending[i].abandoned()) {
              still.push_back(std::move(pending[i]));
            }
          }
          pending.swap(still);
        }
        poll = backend.wait_for_change(&cursor, std::chrono::milliseconds(50));
      } catch (const std::exception& e) {
        spdlog::warn("result watcher: {}", e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        poll = true;
      }
    }
  }

  App& app_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> fresh_;
  bool stop_ = false;
  std::thread thread_;
};

void watch_result(App& app, const std::string& id, std::function<void(const ResultMeta&)> on_ready,
                  std::function<bool()> abandoned) {
  app.watcher().add(id, std::move(on_ready), std::move(abandoned));
}

ResultBackend& backend_of(App& app) { return app.backend(); }

}  // namespace detail

TaskError to_task_error(std::exception_ptr e) {
  auto make = [](const char* type, const std::exception& ex) { return TaskError(type, "builtins", ex.what()); };
  try {
    std::rethrow_exception(e);
  } catch (const TaskError& ex) {
    return ex;
  } catch (const nlohmann::json::type_error& ex) {
    return make("TypeError", ex);
  } catch (const nlohmann::json::out_of_range& ex) {
    return make("KeyError", ex);
  } catch (const nlohmann::json::exception& ex) {
    return make("ValueError", ex);
  } catch (const celeriac::TimeoutError& ex) {
    return make("TimeoutError", ex);
  } catch (const std::invalid_argument& ex) {
    return make("ValueError", ex);
  } catch (const std::domain_error& ex) {
    return make("ValueError", ex);
  } catch (const std::length_error& ex) {
    return make("ValueError", ex);
  } catch (const std::out_of_range& ex) {
    return make("IndexError", ex);
  } catch (const std::overflow_error& ex) {
    return make("OverflowError", ex);
  } catch (const std::underflow_error& ex) {
    return make("ArithmeticError", ex);
  } catch (const std::range_error& ex) {
    return make("ValueError", ex);
  } catch (const std::bad_alloc& ex) {
    return make("MemoryError", ex);
  } catch (const std::system_error& ex) {
    return make("OSError", ex);
  } catch (const std::exception& ex) {
    return make("RuntimeError", ex);
  } catch (...) {
    return TaskError("Exception", "builtins", "unknown C++ exception (not derived from std::exception)");
  }
}

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
  if (!backend_) backend_ = make_backend(config_.backend_url.empty() ? config_.broker_url : config_.backend_url);
  return *backend_;
}

detail::ResultWatcher& App::watcher() {
  std::lock_guard lock(mu_);
  if (!watcher_) watcher_ = std::make_unique<detail::ResultWatcher>(*this);
  return *watcher_;
}

TaskMessage App::build_message(const std::string& name, Json args, Json kwargs, const CallOptions& o) const {
  if (name.empty()) throw ConfigError("task name must not be empty");
  if (!args.is_array()) throw ConfigError("task '" + name + "': args must be a JSON array, got " + dumps(args));
  if (!kwargs.is_object())
    throw ConfigError("task '" + name + "': kwargs must be a JSON object, got " + dumps(kwargs));
  if (o.priority && (*o.priority < 0 || *o.priority > 9))
    throw ConfigError("task '" + name + "': priority " + std::to_string(*o.priority) + " out of range 0-9");
  TaskMessage m;
  m.id = o.task_id.empty() ? make_uuid() : o.task_id;
  m.task = name;
  m.args = std::move(args);
  m.kwargs = std::move(kwargs);
  auto now = Clock::now();
  if (o.eta) {
    m.eta = o.eta;
  } else if (o.countdown) {
    m.eta = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*o.countdown));
  }
  if (o.expires) {
    m.expires = o.expires;
  } else if (o.expires_in) {
    m.expires = now + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*o.expires_in));
  }
  if (m.expires) {
    double secs = std::chrono::duration<double>(*m.expires - now).count();
    m.expiration = std::to_string(static_cast<long long>(std::max(0.0, secs)));
  }
  m.queue = o.queue.empty() ? config_.default_queue : o.queue;
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
  std::string envelope = encode(m);
  int attempts = 0;
  double interval = o.retry_policy.interval_start;
  for (;;) {
    try {
      broker().publish(m.queue, m.priority, envelope);
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
  broker().publish_many(out);
}

AsyncResult<Json> App::send_task(const std::string& name, Json args, Json kwargs, const CallOptions& options) {
  TaskMessage m = build_message(name, std::move(args), std::move(kwargs), options);
  AsyncResult<Json> r(*this, m.id);
  publish(m, options);
  return r;
}

void App::add_periodic_task(Schedule schedule, TaskCall call, std::string name, PeriodicOptions options) {
  PeriodicEntry entry{std::move(name), std::move(schedule), std::move(call), std::move(options)};
  entry.validate();
  std::lock_guard lock(mu_);
  for (const auto& e : periodic_)
    if (e.name == entry.name)
      throw ConfigError("periodic task '" + entry.name + "': duplicate entry name (names must be unique)");
  periodic_.push_back(std::move(entry));
}

std::vector<PeriodicEntry> App::periodic_tasks() const {
  std::lock_guard lock(mu_);
  return periodic_;
}

}  // namespace celeriac::tq
