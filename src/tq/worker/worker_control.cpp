// Remote control of a running worker: see worker_control.hpp.
#include "worker_control.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::detail {

namespace {

std::string masked(const std::string& url) {
  if (url.empty()) return url;
  try {
    return Url::parse(url).redacted();
  } catch (const std::exception&) {
    return "<unparsable url>";  // never echo a string that may hold a password
  }
}

// Celery's `n` argument ([N=1]): an integer >= 0, also as a string.
std::size_t count_argument(const Json& args, const std::string& method) {
  auto it = args.find("n");
  if (it == args.end() || it->is_null()) return 1;
  long long n = -1;
  if (it->is_number_integer()) {
    n = it->get<long long>();
  } else if (it->is_string()) {
    const auto& s = it->get_ref<const std::string&>();
    std::size_t used = 0;
    try {
      n = std::stoll(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty()) n = -1;
  }
  if (n < 0) throw ConfigError(method + " needs n, a whole number >= 0, got " + it->dump());
  return static_cast<std::size_t>(n);
}

std::string queue_argument(const Json& args, const std::string& method) {
  auto it = args.find("queue");
  if (it == args.end() || !it->is_string() || it->get_ref<const std::string&>().empty())
    throw ConfigError(method + " needs queue, a queue name, got " +
                      (it == args.end() ? std::string("nothing") : it->dump()));
  return it->get<std::string>();
}

Json resize(LiveWorker& w, const std::string& method, std::size_t n) {
  if (method == "pool_grow")
    w.pool.grow(n);
  else
    w.pool.shrink(n);
  std::size_t c = w.pool.concurrency();
  std::size_t prefetch = c * static_cast<std::size_t>(std::max(1, w.prefetch_multiplier));
  w.consumer.set_window(prefetch);
  if (w.prefetch_changed) w.prefetch_changed(prefetch);
  spdlog::info("{}: pool concurrency now {}", method, c);
  return Json{{"ok", method == "pool_grow" ? "pool will grow" : "pool will shrink"}};
}

}  // namespace

Json worker_conf(const App& app, const WorkerOptions& o, std::size_t concurrency) {
  const AppConfig& c = app.config();
  return Json{
      {"broker_url", masked(c.broker_url.empty() ? std::string(kDefaultUrl) : c.broker_url)},
      {"result_backend", masked(c.backend_url)},
      {"task_default_queue", c.default_queue},
      {"result_extended", c.result_extended},
      {"worker_pool", o.pool},
      {"worker_concurrency", concurrency},
      {"worker_prefetch_multiplier", o.prefetch_multiplier},
      {"task_acks_late", o.acks_late},
      {"task_reject_on_worker_lost", o.reject_on_worker_lost},
      {"worker_max_tasks_per_child", o.max_tasks_per_child},
      {"worker_max_memory_per_child", o.max_memory_per_child},
      {"worker_send_task_events", o.task_events},
      {"broker_transport_options",
       {{"visibility_timeout",
         o.visibility_timeout.count() > 0 ? Json(o.visibility_timeout.count()) : Json(nullptr)}}}};
}

Json scheduled_requests(const std::vector<std::pair<TimePoint, JobPtr>>& held,
                        const JobLifecycle& lifecycle) {
  Json out = Json::array();
  for (auto& [due, job] : held)
    out.push_back({{"eta", format_iso8601(job->msg.eta.value_or(due), true)},
                   {"priority", 6},
                   {"request", lifecycle.request_info(*job, false)}});
  return out;
}

Json revoked_ids(const std::unordered_set<std::string>& revoked) {
  std::vector<std::string> ids(revoked.begin(), revoked.end());
  std::sort(ids.begin(), ids.end());
  return Json(ids);
}

std::optional<Json> live_control(LiveWorker& w, const std::string& method, const Json& args) {
  if (method == "pool_grow" || method == "pool_shrink") {
    try {
      return resize(w, method, count_argument(args, method));
    } catch (const ConfigError& e) {
      return Json{{"error", e.what()}};
    }
  }
  if (method == "add_consumer" || method == "cancel_consumer") {
    std::string queue;
    try {
      queue = queue_argument(args, method);
    } catch (const ConfigError& e) {
      return Json{{"error", e.what()}};
    }
    if (method == "add_consumer") {
      if (w.consumer.add_queue(queue)) spdlog::info("started consuming from {}", queue);
      return Json{{"ok", "add consumer " + queue}};
    }
    if (w.consumer.cancel_queue(queue)) spdlog::info("stopped consuming from {}", queue);
    return Json{{"ok", "no longer consuming from " + queue}};
  }
  return std::nullopt;
}

}  // namespace celeriac::tq::detail
