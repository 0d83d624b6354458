#include "celeriac/tq/unique.hpp"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include <spdlog/spdlog.h>

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {

std::string unique_key(const std::string& name, const Json& args, const Json& kwargs,
                       const std::optional<std::string>& custom) {
  return "celeriac.unique." + name + ":" + (custom ? *custom : dumps(Json::array({args, kwargs})));
}

// The in-process claims of brokers without a shared store (memory://).
std::optional<std::string> Broker::claim_unique(std::string_view key, std::string_view id,
                                                std::chrono::milliseconds ttl) {
  struct Claim {
    std::string id;
    std::chrono::steady_clock::time_point until;
  };
  static std::mutex mu;
  static std::map<std::string, Claim, std::less<>> claims;
  auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu);
  std::string full = url() + "#" + std::string(key);
  auto it = claims.find(full);
  if (it != claims.end() && it->second.until > now && it->second.id != id) return it->second.id;
  claims[full] = Claim{std::string(id), now + ttl};
  // Forget expired claims now and then so the map stays small.
  if (claims.size() > 1024)
    std::erase_if(claims, [&](const auto& kv) { return kv.second.until <= now; });
  return std::nullopt;
}

void Broker::release_unique(std::string_view key, std::string_view id) {
  // Same storage as claim_unique(): an expired claim for `id` is harmless,
  // a claim of another id must stay; a zero-ttl claim by the holder ends it.
  auto holder = claim_unique(key, id, std::chrono::milliseconds(0));
  (void)holder;
}

namespace detail {

double unique_period(const TaskMessage& m, const TaskDef* def, const CallOptions& o) {
  double period = o.unique_for ? *o.unique_for : def ? def->options.unique_for : 0.0;
  if (period < 0 || !std::isfinite(period))
    throw ConfigError("task '" + m.task + "': unique_for must be >= 0 seconds, got " +
                      std::to_string(period));
  return period;
}

std::optional<std::string> claim_unique(Broker& broker, TaskMessage& m, const TaskDef* def,
                                        double period) {
  std::optional<std::string> custom;
  if (def && def->options.unique_key) custom = def->options.unique_key(m.args, m.kwargs);
  std::string key = unique_key(m.task, m.args, m.kwargs, custom);
  auto ttl = std::chrono::milliseconds(std::max<long long>(1, std::llround(period * 1000)));
  auto holder = broker.claim_unique(key, m.id, ttl);
  if (holder) return holder;
  m.extra_headers[kUniqueHeader] = key;
  return std::nullopt;
}

void release_unique(Broker& broker, const TaskMessage& m) noexcept {
  auto it = m.extra_headers.find(kUniqueHeader);
  if (it == m.extra_headers.end() || !it->is_string()) return;
  try {
    broker.release_unique(it->get<std::string>(), m.id);
  } catch (const std::exception& e) {
    spdlog::warn("task {}[{}]: unique key not released ({}); it expires by itself", m.task, m.id,
                 e.what());
  }
}

}  // namespace detail
}  // namespace celeriac::tq
