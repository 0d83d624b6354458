// Scheme -> factory registries for brokers, backends, control clients and
// worker services, plus the default implementations of Broker/ResultBackend
// helper members.
#include <algorithm>
#include <map>
#include <mutex>
#include <thread>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/detail/transports.hpp"
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq {

// Built-in factories (memory.cpp, sqlite.cpp).
namespace detail {
std::unique_ptr<Broker> make_memory_broker(const Url& url);
std::unique_ptr<ResultBackend> make_memory_backend(const Url& url);
std::unique_ptr<Broker> make_sqlite_broker(const Url& url);
std::unique_ptr<ResultBackend> make_sqlite_backend(const Url& url);
}  // namespace detail

namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, BrokerFactory> brokers;
  std::map<std::string, BackendFactory> backends;
  std::map<std::string, ControlClientFactory> controls;
  std::map<std::string, std::vector<WorkerServiceFactory>> services;
};

// The tables with the built-in schemes only. The register_* functions use
// this one: the optional transports call them from inside registry()'s
// call_once, which must not be re-entered.
Registry& builtin_registry() {
  static Registry* r = [] {
    auto* reg = new Registry;
    reg->brokers["memory"] = detail::make_memory_broker;
    reg->backends["memory"] = detail::make_memory_backend;
    reg->brokers["sqlite"] = detail::make_sqlite_broker;
    reg->backends["sqlite"] = detail::make_sqlite_backend;
    return reg;
  }();
  return *r;
}

// The tables for lookups: the optional transports registered once first.
Registry& registry() {
  Registry& r = builtin_registry();
  static std::once_flag optional_transports;
  std::call_once(optional_transports, [] {
    monitor::register_transports();  // memory/sqlite remote control and events
#ifdef CELERIAC_TQ_WITH_REDIS
    redis::register_transports();
#endif
#ifdef CELERIAC_TQ_WITH_AMQP
    amqp::register_transports();
#endif
  });
  return r;
}

template <class Map>
std::vector<std::string> keys(Map& m) {
  std::vector<std::string> out;
  for (auto& [k, v] : m) out.push_back(k);
  return out;
}

template <class Map>
std::string schemes_text(Map& m) {
  std::string s;
  for (auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k + "://";
  return s;
}

}  // namespace

void register_broker_scheme(std::string scheme, BrokerFactory factory) {
  auto& r = builtin_registry();
  std::lock_guard lock(r.mu);
  r.brokers[std::move(scheme)] = std::move(factory);
}

void register_backend_scheme(std::string scheme, BackendFactory factory) {
  auto& r = builtin_registry();
  std::lock_guard lock(r.mu);
  r.backends[std::move(scheme)] = std::move(factory);
}

void register_control_scheme(std::string scheme, ControlClientFactory factory) {
  auto& r = builtin_registry();
  std::lock_guard lock(r.mu);
  r.controls[std::move(scheme)] = std::move(factory);
}

void register_worker_service(std::string scheme, WorkerServiceFactory factory) {
  auto& r = builtin_registry();
  std::lock_guard lock(r.mu);
  r.services[std::move(scheme)].push_back(std::move(factory));
}

std::vector<WorkerServiceFactory> worker_services(std::string_view scheme) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.services.find(std::string(scheme));
  return it == r.services.end() ? std::vector<WorkerServiceFactory>{} : it->second;
}

namespace {

// The factory `table` holds for the URL's scheme; ConfigError(unknown(the
// registered schemes)) when there is none.
template <class Factory, class Unknown>
Factory find_factory(std::map<std::string, Factory> Registry::*table, const Url& url,
                     Unknown unknown) {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  auto& m = r.*table;
  auto it = m.find(url.scheme);
  if (it == m.end()) throw ConfigError(unknown(schemes_text(m)));
  return it->second;
}

Url parse_or_default(std::string_view url_text) {
  return Url::parse(url_text.empty() ? kDefaultUrl : url_text);
}

}  // namespace

std::unique_ptr<Broker> make_broker(std::string_view url_text) {
  Url url = parse_or_default(url_text);
  return find_factory(&Registry::brokers, url, [&](const std::string& have) {
    return "bad broker URL '" + url.redacted() + "': unknown scheme '" + url.scheme +
           "' (expected one of " + have + ")";
  })(url);
}

std::unique_ptr<ResultBackend> make_backend(std::string_view url_text) {
  Url url = parse_or_default(url_text);
  return find_factory(&Registry::backends, url, [&](const std::string& have) {
    return "bad result backend URL '" + url.redacted() + "': unknown scheme '" + url.scheme +
           "' (expected one of " + have + ")";
  })(url);
}

std::unique_ptr<ControlClient> make_control_client(std::string_view url_text) {
  Url url = parse_or_default(url_text);
  return find_factory(&Registry::controls, url, [&](const std::string& have) {
    return "remote control is not available for broker '" + url.redacted() + "' (scheme '" +
           url.scheme + "'); it needs " +
           (have.empty() ? std::string("the Redis transport (redis://)") : have);
  })(url);
}

std::vector<std::string> broker_schemes() {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  return keys(r.brokers);
}

std::vector<std::string> backend_schemes() {
  auto& r = registry();
  std::lock_guard lock(r.mu);
  return keys(r.backends);
}

// ---- Broker defaults ----

namespace {

// A query parameter holding whole seconds (>= `min`), or `fallback`.
std::chrono::seconds seconds_param(const Url& url, const std::string& key, long long fallback,
                                   long long min) {
  std::string v = url.param(key);
  if (v.empty()) return std::chrono::seconds(fallback);
  try {
    std::size_t pos = 0;
    long long s = std::stoll(v, &pos);
    if (pos != v.size() || s < min) throw std::invalid_argument(v);
    return std::chrono::seconds(s);
  } catch (const std::exception&) {
    throw ConfigError("bad URL '" + url.redacted() + "': " + key + "='" + v + "' must be " +
                      (min > 0 ? "a positive" : "a non-negative") + " number of seconds");
  }
}

}  // namespace

std::chrono::seconds visibility_timeout_of(const Url& url) {
  return seconds_param(url, "visibility_timeout", 3600, 1);
}

namespace detail {
std::chrono::seconds expires_param(const Url& url) {
  return seconds_param(url, "expires", 86400, 0);
}
}  // namespace detail

int priority_step(int priority) noexcept {
  if (priority <= 2) return 0;
  if (priority <= 5) return 3;
  if (priority <= 8) return 6;
  return 9;
}

std::string priority_queue_key(std::string_view queue, int priority) {
  int step = priority_step(priority);
  std::string key(queue);
  if (step != 0) {
    key += "\x06\x16";
    key += std::to_string(step);
  }
  return key;
}

void Broker::publish_many(std::span<const Outgoing> messages) {
  for (const auto& m : messages) publish(m.queue, m.priority, m.envelope);
}

std::optional<Delivery> Broker::get(std::span<const std::string> queues,
                                    std::chrono::milliseconds timeout) {
  auto v = reserve(queues, 1, timeout);
  if (v.empty()) return std::nullopt;
  return std::move(v.front());
}

void Broker::ack_many(std::span<const Delivery> ds) {
  for (const auto& d : ds) ack(d);
}

// ---- ResultBackend defaults ----

std::vector<bool> ResultBackend::store_many(std::span<const ResultMeta> metas) {
  std::vector<bool> out;
  out.reserve(metas.size());
  for (const auto& m : metas) out.push_back(store(m));
  return out;
}

std::vector<std::optional<ResultMeta>> ResultBackend::get_many(
    std::span<const std::string> task_ids) {
  std::vector<std::optional<ResultMeta>> out;
  out.reserve(task_ids.size());
  for (const auto& id : task_ids) out.push_back(get(id));
  return out;
}

bool ResultBackend::wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout) {
  (void)cursor;
  std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
  return true;
}

std::optional<ResultMeta> ResultBackend::wait(std::string_view task_id,
                                              std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::uint64_t cursor = 0;
  for (;;) {
    auto m = get(task_id);
    if (m && is_ready(m->status)) return m;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return m;
    wait_for_change(&cursor, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) +
                                 std::chrono::milliseconds(1));
  }
}

}  // namespace celeriac::tq
