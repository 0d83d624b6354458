// The result backend interface and Celery's result meta
// (celery-task-meta-<id>, ../shared/CELERY-PROTOCOL.md §6).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/json.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq {

/// Task states as Celery names them. PENDING is never stored (a missing meta
/// means PENDING).
enum class State { Pending, Received, Started, Success, Failure, Retry, Revoked };

/// "PENDING", "STARTED", "SUCCESS", ...
std::string_view to_string(State s) noexcept;
/// Inverse of to_string(); throws ConfigError for an unknown name.
State state_from_string(std::string_view name);
/// SUCCESS, FAILURE and REVOKED: the task will not change any more.
bool is_ready(State s) noexcept;

/// One stored result, exactly Celery's JSON meta.
struct ResultMeta {
  /// The task id.
  std::string task_id;
  /// PENDING, STARTED, RETRY, SUCCESS, FAILURE or REVOKED.
  State status = State::Pending;
  Json result;                           ///< value, serialized exception, or null
  std::optional<std::string> traceback;  ///< null unless FAILURE/RETRY
  Json children = Json::array();         ///< [[[child_id, null], null], ...]
  std::optional<std::string> date_done;  ///< naive UTC ISO-8601; null unless ready
  std::optional<std::string> group_id;   ///< only when the task had a group
  std::optional<std::string> parent_id;  ///< only when the task had a parent
  /// result_extended fields {name, args, kwargs, worker, retries, queue}, or
  /// null when not extended.
  OrderedJson extended;

  /// Celery's byte layout: {"status", "result", "traceback", "children",
  /// "date_done", ["group_id"], ["parent_id"], [extended...], "task_id"}.
  std::string to_json() const;
  /// Parses a stored meta (from any Celery or celeriac writer); throws
  /// MessageError saying which field is wrong.
  static ResultMeta from_json(std::string_view text);
};

/// One finished part of a chord header (Celery's on_chord_part_return).
struct ChordPart {
  std::string group_id;                  ///< the chord's group id (headers.group)
  std::optional<long long> group_index;  ///< the part's place in the header (null = last)
  std::string task_id;                   ///< the part's task id
  State state = State::Success;          ///< SUCCESS, FAILURE or REVOKED
  Json result;                           ///< the value, or the serialized exception
};

/// Stores and fetches result metas. Thread-safe; every call may throw
/// BackendError.
class ResultBackend {
 public:
  virtual ~ResultBackend() = default;

  /// The URL this backend was made from (password redacted).
  virtual std::string url() const = 0;

  /// Stores `meta` under its task id with the backend's expiry, unless the
  /// stored meta is already SUCCESS (Celery's dedup guard). Returns whether it
  /// was written. Wakes wait() callers and watchers.
  virtual bool store(const ResultMeta& meta) = 0;
  /// store() of several metas at once (one pipeline / transaction where the
  /// backend can: the worker writes the results of tasks finishing together
  /// this way). Returns, per meta, whether it was written.
  virtual std::vector<bool> store_many(std::span<const ResultMeta> metas);
  /// The stored meta, or nullopt (PENDING / unknown / expired).
  virtual std::optional<ResultMeta> get(std::string_view task_id) = 0;
  /// get() for several ids at once (one query where possible); same order.
  virtual std::vector<std::optional<ResultMeta>> get_many(std::span<const std::string> task_ids);
  /// Waits until the meta is ready (SUCCESS/FAILURE/REVOKED) or `timeout`
  /// elapsed; returns the latest meta (maybe not ready), or nullopt.
  virtual std::optional<ResultMeta> wait(std::string_view task_id,
                                         std::chrono::milliseconds timeout);
  /// Blocks until something may have been stored since `*cursor` (updated),
  /// or `timeout`. Returns true on a possible change. The default sleeps
  /// min(timeout, 5 ms) and returns true (a polling backend).
  virtual bool wait_for_change(std::uint64_t* cursor, std::chrono::milliseconds timeout);
  /// Deletes the meta (AsyncResult.forget()).
  virtual void forget(std::string_view task_id) = 0;
  /// Deletes expired metas now; returns how many (backends also expire lazily).
  virtual std::size_t cleanup() = 0;
  /// How long metas live (Celery's result_expires, default 1 day); zero = forever.
  virtual std::chrono::seconds expires() const = 0;
  /// Releases connections; later calls throw BackendError. Idempotent.
  virtual void close() = 0;

  // ---- chords (docs/tq-canvas.md); the defaults throw BackendError ----
  /// Records how many parts the chord `group_id` has (Redis:
  /// `celery-taskset-meta-<gid>.s`). Set before the last part is published.
  virtual void set_chord_size(std::string_view group_id, std::size_t size);
  /// Records a finished part, atomically. When this part completes the
  /// count, returns every part as Celery's `[1, task_id, state, result]`,
  /// ordered by group_index, and forgets the chord; otherwise nullopt.
  virtual std::optional<Json> add_chord_part(const ChordPart& part);
  /// Saves the member ids of group `group_id` (GroupResult.save()).
  virtual void save_group(std::string_view group_id, const std::vector<std::string>& task_ids);
  /// The member ids saved for `group_id`, or nullopt.
  virtual std::optional<std::vector<std::string>> restore_group(std::string_view group_id);
  /// Deletes a saved group (GroupResult.forget()).
  virtual void forget_group(std::string_view group_id);
};

/// Makes a backend for a parsed URL.
using BackendFactory = std::function<std::unique_ptr<ResultBackend>(const Url&)>;

/// Registers (or replaces) the factory for `scheme`.
void register_backend_scheme(std::string scheme, BackendFactory factory);
/// Creates a backend from `url` ("" = "sqlite:///celeriac.db"). The query
/// parameter `expires=<seconds>` sets the expiry (0 = never). Throws
/// ConfigError quoting the URL.
std::unique_ptr<ResultBackend> make_backend(std::string_view url);
/// Registered backend schemes, sorted.
std::vector<std::string> backend_schemes();

}  // namespace celeriac::tq
