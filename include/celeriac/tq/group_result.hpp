// GroupResult: the results of a group's members (Celery's GroupResult),
// saved and restored under Celery's key celery-taskset-meta-<gid>.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "celeriac/tq/async_result.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq {

class App;

/// The results of one group, in member order.
class GroupResult {
 public:
  /// The group `id` of `app` with member task ids `ids`.
  GroupResult(App& app, std::string id, std::vector<std::string> ids);
  /// Restores a group saved with save() (by Python or C++); throws
  /// BackendError when nothing is saved under `id`.
  static GroupResult restore(App& app, const std::string& id);

  /// The group id.
  const std::string& id() const noexcept { return id_; }
  /// The member task ids.
  const std::vector<std::string>& ids() const noexcept { return ids_; }
  /// One AsyncResult per member.
  std::vector<AsyncResult<Json>> results() const;
  /// Waits for every member; their results in order. Throws the first
  /// member's TaskError, or TimeoutError naming the group after `timeout`.
  Json get(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const;
  /// get() (Celery's join()).
  Json join(std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    return get(timeout);
  }
  /// Whether every member finished.
  bool ready() const;
  /// Whether every member succeeded.
  bool successful() const;
  /// Whether any member failed.
  bool failed() const;
  /// How many members finished successfully.
  std::size_t completed_count() const;
  /// Saves the member ids in the backend (Celery's save()).
  void save() const;
  /// Deletes the saved group.
  void forget() const;

 private:
  std::vector<std::optional<ResultMeta>> metas() const;
  App* app_;
  std::string id_;
  std::vector<std::string> ids_;
};

}  // namespace celeriac::tq
