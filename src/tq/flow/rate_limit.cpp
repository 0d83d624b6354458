#include "celeriac/tq/rate_limit.hpp"

#include <charconv>
#include <cmath>
#include <map>

#include <spdlog/spdlog.h>

#include "celeriac/tq/errors.hpp"
#include "rate_limiter.hpp"

namespace celeriac::tq {

double parse_rate(std::string_view text, std::string_view what) {
  if (text.empty()) return 0;
  auto bad = [&](const std::string& why) {
    return ConfigError(std::string(what) + ": '" + std::string(text) + "' " + why +
                       " (expected e.g. \"10/s\", \"100/m\", \"1000/h\" or a number per second)");
  };
  std::string_view number = text, unit = "s";
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    number = text.substr(0, slash);
    unit = text.substr(slash + 1);
  }
  double n = 0;
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
  if (ec != std::errc() || end != number.data() + number.size() || !std::isfinite(n))
    throw bad("is not a rate");
  if (n < 0) throw bad("is negative");
  if (unit == "s") return n;
  if (unit == "m") return n / 60.0;
  if (unit == "h") return n / 3600.0;
  throw bad("has an unknown unit '" + std::string(unit) + "' (s, m or h)");
}

Json control_rate_limit(WorkerControl& worker, const Json& arguments) {
  const Json& name = arguments.contains("task_name") ? arguments["task_name"] : Json();
  if (!name.is_string()) return Json{{"error", "rate_limit needs a task_name string"}};
  const Json& rate = arguments.contains("rate_limit") ? arguments["rate_limit"] : Json();
  std::string text = rate.is_string() ? rate.get<std::string>() : rate.is_null() ? "" : dumps(rate);
  return worker.rate_limit(name.get<std::string>(), text);
}

// The in-process bucket of brokers without a shared store (memory://): one
// per broker URL and key, in this process.
std::chrono::microseconds Broker::take_rate_slot(std::string_view key,
                                                 std::chrono::microseconds interval) {
  static std::mutex mu;
  static std::map<std::string, std::chrono::system_clock::time_point, std::less<>> next;
  auto now = std::chrono::system_clock::now();
  std::lock_guard lock(mu);
  auto& slot = next[url() + "#" + std::string(key)];
  auto start = std::max(slot, now);
  slot = start + interval;
  return std::chrono::duration_cast<std::chrono::microseconds>(start - now);
}

namespace detail {

std::string global_rate_key(const std::string& name) {
  return "celeriac.rate." + name;
}

std::optional<TimePoint> RateLimiter::take(const TaskDef& def, Broker& broker, bool& reserved) {
  if (def.options.rate_limit.empty() && def.options.global_rate_limit.empty() &&
      !overridden_.load(std::memory_order_relaxed))
    return std::nullopt;
  std::chrono::nanoseconds wait = take_local(def);
  try {
    wait = std::max(wait, take_global(def, broker));
  } catch (const std::exception& e) {
    // No slot could be reserved: hold the job a second and ask again.
    spdlog::error("global rate limit of task {}: {}; holding it for 1 s", def.name, e.what());
    return Clock::now() + std::chrono::seconds(1);
  }
  reserved = true;
  // A slot less than a millisecond away starts now: holding the job would
  // cost more than that. Slots stay 1/rate apart, so the error never adds up.
  if (wait < std::chrono::milliseconds(1)) return std::nullopt;
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(wait);
}

std::chrono::nanoseconds RateLimiter::take_local(const TaskDef& def) {
  std::lock_guard lock(mu_);
  auto it = local_.find(def.name);
  if (it == local_.end())
    it = local_.emplace(def.name, Bucket{parse_rate(def.options.rate_limit), {}}).first;
  Bucket& b = it->second;
  if (b.per_second <= 0) return std::chrono::nanoseconds::zero();
  auto now = std::chrono::steady_clock::now();
  auto start = std::max(b.next, now);
  b.next = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                       std::chrono::duration<double>(1.0 / b.per_second));
  return start - now;
}

std::chrono::nanoseconds RateLimiter::take_global(const TaskDef& def, Broker& broker) {
  if (def.options.global_rate_limit.empty()) return std::chrono::nanoseconds::zero();
  Global g;
  {
    std::lock_guard lock(mu_);
    auto it = global_.find(def.name);
    if (it == global_.end()) {
      double rate = parse_rate(def.options.global_rate_limit);
      Global fresh{global_rate_key(def.name), std::chrono::microseconds(0)};
      if (rate > 0)
        fresh.interval =
            std::chrono::microseconds(static_cast<long long>(std::llround(1e6 / rate)));
      it = global_.emplace(def.name, std::move(fresh)).first;
    }
    g = it->second;
  }
  if (g.interval.count() <= 0) return std::chrono::nanoseconds::zero();
  return broker.take_rate_slot(g.key, g.interval);
}

void RateLimiter::set(const std::string& name, const std::string& rate) {
  double per_second = parse_rate(rate, "rate limit of task '" + name + "'");
  std::lock_guard lock(mu_);
  Bucket& b = local_[name];
  b.per_second = per_second;
  b.next = {};
  overridden_ = true;
}

}  // namespace detail
}  // namespace celeriac::tq
