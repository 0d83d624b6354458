// The worker's side of remote control beyond the basics: what `inspect
// conf`, `inspect scheduled` and `inspect revoked` answer, and the control
// commands that change a running worker (pool_grow, pool_shrink,
// add_consumer, cancel_consumer), in Celery's reply shapes.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "celeriac/tq/app.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/worker.hpp"
#include "consumer.hpp"
#include "resizable_pool.hpp"

namespace celeriac::tq::detail {

/// `inspect conf`: the worker's settings under Celery's keys (broker_url,
/// result_backend, worker_concurrency, worker_pool, ...); passwords masked.
Json worker_conf(const App& app, const WorkerOptions& options, std::size_t concurrency);

/// `inspect scheduled`: one {"eta","priority","request"} per held job, as
/// Celery's worker lists its timer entries (priority 6, its ETA priority).
Json scheduled_requests(const std::vector<std::pair<TimePoint, JobPtr>>& held,
                        const JobLifecycle& lifecycle);

/// `inspect revoked`: the revoked ids, sorted.
Json revoked_ids(const std::unordered_set<std::string>& revoked);

/// What a live worker can change: its pool and its consumer.
struct LiveWorker {
  ResizablePool& pool;
  Consumer& consumer;
  int prefetch_multiplier;
  /// Called with the new prefetch limit after the pool changed size.
  std::function<void(std::size_t)> prefetch_changed;
};

/// Runs pool_grow, pool_shrink, add_consumer or cancel_consumer on `w`:
/// Celery's reply ({"ok": ...} or {"error": ...} naming what was wrong);
/// nullopt for any other method.
std::optional<Json> live_control(LiveWorker& w, const std::string& method, const Json& arguments);

}  // namespace celeriac::tq::detail
