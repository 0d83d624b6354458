// The broker-independent half of remote control and events: which node a
// pidbox request is for, what each `inspect`/`control` method answers, and
// the worker-event payloads. Every transport (Redis, AMQP, SQLite, memory)
// moves these bodies; none of them interprets a method itself.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "celeriac/tq/control.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::detail {

/// celeriac's version as reported in worker events (sw_ver).
inline constexpr const char* kSoftwareVersion = "0.1.0";

/// One worker's remote-control identity: its Lamport clock and whether task
/// events are on (`-E`, `enable_events`/`disable_events`).
struct ControlNode {
  /// Wraps `w` (which must outlive the node).
  ControlNode(WorkerControl& w, bool events) : worker(w), hostname(w.hostname()) {
    task_events = events;
  }
  WorkerControl& worker;                 ///< what requests act on
  std::string hostname;                  ///< node name, e.g. celery@host
  std::atomic<long> clock{0};            ///< Lamport clock of this node
  std::atomic<bool> task_events{false};  ///< task-* events are published
  /// Advances the clock past `seen` and returns the new value.
  long next_clock(long seen = 0);
};

/// True when the broker URL asks for task events (`?events=1`, the alias of -E).
bool events_requested(const Url& broker_url);
/// Runs one pidbox request body on `node` and returns the reply payload, or
/// nullopt when nothing is to be sent (not for this node, shutdown, mingle
/// from itself, not an object).
std::optional<Json> dispatch_control(ControlNode& node, const Json& req);
/// A worker-online/heartbeat/offline event with Celery's fields.
OrderedJson worker_event(ControlNode& node, const char* type, std::chrono::milliseconds freq);
/// A task event from the lifecycle stamped with hostname, pid, clock,
/// timestamp (Celery's Dispatcher does the same); "type" kept.
OrderedJson stamp_task_event(ControlNode& node, const Json& event);
/// The body of a pidbox request as Celery's client (kombu's Mailbox) sends
/// it: method, arguments (an object), destination (null = every worker), no
/// pattern; ticket and reply_to {reply.celery.pidbox, oid} only when a reply
/// is wanted. Each transport adds its own envelope and expiry.
OrderedJson pidbox_request(const std::string& method, const Json& arguments,
                           const std::optional<std::vector<std::string>>& destination,
                           const std::string& ticket, const std::string& oid, bool want_reply);

}  // namespace celeriac::tq::detail
