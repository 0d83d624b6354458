// The result watcher behind AsyncResult: one thread per App completes every
// pending AsyncResult when its meta becomes ready, woken by the backend's
// change notification (Redis pub/sub, SQLite data_version, in-process for
// memory), never by a fixed sleep.
#include "celeriac/tq/async_result.hpp"

#include <spdlog/spdlog.h>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/detail/result_watcher.hpp"

namespace celeriac::tq::detail {

TaskError error_from_meta(const ResultMeta& m) {
  std::string state(to_string(m.status));
  const Json& r = m.result;
  if (r.is_object() && r.contains("exc_type")) {
    std::string type = r["exc_type"].is_string() ? r["exc_type"].get<std::string>() : "Exception";
    std::string module = r.contains("exc_module") && r["exc_module"].is_string()
                             ? r["exc_module"].get<std::string>()
                             : "builtins";
    Json msg = r.contains("exc_message") ? r["exc_message"] : Json::array();
    return TaskError(type, module, msg, m.traceback.value_or(""), state);
  }
  return TaskError("Exception", "builtins", r.is_string() ? r : Json(dumps(r)),
                   m.traceback.value_or(""), state);
}

ResultWatcher::ResultWatcher(App& app) : app_(app), thread_([this] { loop(); }) {}

ResultWatcher::~ResultWatcher() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ResultWatcher::add(const std::string& id, std::function<void(const ResultMeta&)> on_ready,
                        std::function<bool()> abandoned) {
  {
    std::lock_guard lock(mu_);
    fresh_.push_back(Entry{id, std::move(on_ready), std::move(abandoned)});
  }
  cv_.notify_all();
}

void ResultWatcher::loop() {
  // A read every second while results are pending, in case a notification
  // was lost with a connection; notifications do the real work.
  constexpr auto kSafetyPoll = std::chrono::seconds(1);
  auto last_poll = std::chrono::steady_clock::now();
  std::vector<Entry> pending;
  std::uint64_t cursor = 0;
  bool poll = true;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (pending.empty() && fresh_.empty())
        cv_.wait_for(lock, std::chrono::milliseconds(200),
                     [&] { return stop_ || !fresh_.empty(); });
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
        // Take the change cursor before reading: a result stored after this
        // point makes the next wait return at once, so none can slip between
        // the read and the wait (this also subscribes the Redis backend
        // before its first read).
        (void)backend.wait_for_change(&cursor, std::chrono::milliseconds(0));
        last_poll = std::chrono::steady_clock::now();
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
      poll = backend.wait_for_change(&cursor, std::chrono::milliseconds(50)) ||
             std::chrono::steady_clock::now() - last_poll > kSafetyPoll;
    } catch (const std::exception& e) {
      spdlog::warn("result watcher: {}", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      poll = true;
    }
  }
}

void watch_result(App& app, const std::string& id, std::function<void(const ResultMeta&)> on_ready,
                  std::function<bool()> abandoned) {
  app.watcher().add(id, std::move(on_ready), std::move(abandoned));
}

}  // namespace celeriac::tq::detail
