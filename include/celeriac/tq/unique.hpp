// Unique tasks (TaskOptions::unique_for, CallOptions::unique_for): while a
// call of a task with the same name and arguments is waiting or running, a
// second call returns the first's AsyncResult instead of sending. The
// producer claims a key in the broker (Redis: SET NX PX; SQLite and
// memory: the same in a transaction) that the worker releases when the
// task ends (success, failure, revoke; not a retry) or that expires after
// unique_for seconds.
#pragma once

#include <optional>
#include <string>

#include "celeriac/tq/message.hpp"
#include "celeriac/tq/task.hpp"

namespace celeriac::tq {

class Broker;

/// The message header that carries a unique call's key to the worker.
inline constexpr const char* kUniqueHeader = "celeriac_unique";

/// The unique key of a call of `name`: "celeriac.unique.<name>:" followed
/// by `custom` when given, else the canonical JSON of [args, kwargs]
/// (object keys sorted).
std::string unique_key(const std::string& name, const Json& args, const Json& kwargs,
                       const std::optional<std::string>& custom = std::nullopt);

namespace detail {

/// The unique period of a call in seconds (0 = not unique): the call's
/// option, else the task's (`def` may be null for tasks of other programs).
/// Throws ConfigError naming the task for a negative period.
double unique_period(const TaskMessage& m, const TaskDef* def, const CallOptions& o);

/// Claims the unique key of message `m` for `period` seconds, adding the
/// key header to `m`. Returns the id of the call that holds the key
/// already (then nothing must be sent), or nullopt when `m` got it.
std::optional<std::string> claim_unique(Broker& broker, TaskMessage& m, const TaskDef* def,
                                        double period);

/// Releases the key `m` carries (if it still holds it). Never throws.
void release_unique(Broker& broker, const TaskMessage& m) noexcept;

}  // namespace detail
}  // namespace celeriac::tq
