// The store factory and the stored-state codec shared by the stores.
#include <spdlog/spdlog.h>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/url.hpp"
#include "state_codec.hpp"

namespace celeriac::tq {

std::unique_ptr<BeatStore> make_sqlite_beat_store(const std::string& path, const std::string& name,
                                                  const BeatClock& clock);
#ifdef CELERIAC_TQ_WITH_REDIS
std::unique_ptr<BeatStore> make_redis_beat_store(const Url& url, const std::string& name);
#endif

namespace detail {

std::string encode_entry_state(const EntryState& s) {
  Json j = Json::object();
  j["last_run_at"] = s.last_run ? Json(format_iso8601(*s.last_run)) : Json(nullptr);
  j["total_run_count"] = s.total_runs;
  return j.dump();
}

EntryState decode_entry_state(const std::string& name, const std::string& text) {
  EntryState s;
  try {
    Json j = loads(text);
    if (j.contains("last_run_at") && j["last_run_at"].is_string())
      s.last_run = parse_iso8601(j["last_run_at"].get<std::string>());
    s.total_runs = j.value("total_run_count", std::uint64_t{0});
  } catch (const std::exception& e) {
    spdlog::warn("beat: stored state of '{}' is unreadable ({}); treating it as never run", name,
                 e.what());
    return EntryState{};
  }
  return s;
}

}  // namespace detail

std::unique_ptr<BeatStore> make_beat_store(const std::string& backend_url, const std::string& name,
                                           const BeatClock& clock) {
  Url url = Url::parse(backend_url.empty() ? "sqlite:///celeriac.db" : backend_url);
  if (name.empty()) throw ConfigError("beat: the store name must not be empty");
  if (url.scheme == "memory") return make_memory_beat_store(clock);
  if (url.scheme == "sqlite")
    return make_sqlite_beat_store(url.path.empty() ? "celeriac.db" : url.path, name, clock);
#ifdef CELERIAC_TQ_WITH_REDIS
  if (url.scheme == "redis" || url.scheme == "rediss") return make_redis_beat_store(url, name);
#endif
  throw ConfigError(
      "beat: no state store for backend " + url.redacted() +
      " (beat keeps its lease and state in a redis://, sqlite:// or memory:// backend)");
}

}  // namespace celeriac::tq
