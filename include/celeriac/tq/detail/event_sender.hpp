// Client-side events (Celery's `task_send_sent_event`): a task-sent event
// published on the broker's event channel each time a client sends a task,
// so monitors see tasks before a worker receives them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "celeriac/tq/json.hpp"
#include "celeriac/tq/message.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::detail {

/// Publishes events on one broker's event channel. Thread-safe.
class EventSender {
 public:
  virtual ~EventSender() = default;
  /// Publishes `event` (Celery's fields) with `routing_key` ("task.sent").
  virtual void send(const OrderedJson& event, std::string_view routing_key) = 0;
};

/// Makes the sender of a broker URL.
using EventSenderFactory = std::function<std::unique_ptr<EventSender>(const Url& broker_url)>;
/// Registers the event sender of `scheme` (redis, sqlite, memory, ...).
void register_event_sender(std::string scheme, EventSenderFactory factory);

/// The task-sent event of `m` as Celery's client dispatcher sends it
/// (uuid, name, args/kwargs reprs, retries, eta, expires, root_id,
/// parent_id, queue, exchange, routing_key, hostname "gen<pid>@host",
/// utcoffset, pid, clock, timestamp, type). `envelope` is m encoded.
OrderedJson task_sent_event(const TaskMessage& m, std::string_view envelope);

/// Publishes the task-sent event of `m` on `broker_url`'s event channel
/// (one sender per URL, made on first use). Never throws: a broker without
/// events or a failed publish is logged once, the task is sent regardless.
void send_task_sent(const std::string& broker_url, const TaskMessage& m,
                    std::string_view envelope) noexcept;

}  // namespace celeriac::tq::detail
