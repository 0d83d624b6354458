// kombu's AMQP layout for task queues, the dead-letter queue and the ETA delay
// queues (docs/tq-amqp.md), declared once per connection.
#pragma once

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/json.hpp"

namespace celeriac::tq::amqp::detail {

/// Names declared on one connection (cleared when it reconnects).
using Declarations = std::set<std::string, std::less<>>;

/// As Celery declares a task queue: direct exchange `queue` (durable), queue
/// `queue` (durable, x-max-priority when given) bound with key `queue`.
void declare_task_queue(Connection& c, Declarations& done, std::string_view queue,
                        std::optional<int> max_priority);
/// The durable celeriac.dead_letter queue (capped at 100000 messages).
void declare_dead_letter_queue(Connection& c, Declarations& done);

/// Largest delay level: 2^27 s (about 4.25 years), as Celery 5.5.
inline constexpr int kMaxDelayLevel = 27;
/// The delay level for a wait: the largest k with 2^k s <= wait (capped).
int delay_level(std::chrono::milliseconds wait);
/// Declares delay level delay_level(wait) and returns its exchange: fanout
/// exchange and queue celeriac_delayed_<k> with x-message-ttl 2^k s,
/// dead-lettered to the default exchange with the message's routing key, so
/// a message published there with routing key `queue` comes back to `queue`
/// no later than its ETA.
std::string declare_delay_level(Connection& c, Declarations& done, std::chrono::milliseconds wait);

/// Time until headers.eta (ISO-8601), or nullopt when there is none or it
/// does not parse (the worker reports that).
std::optional<std::chrono::milliseconds> eta_remaining(const OrderedJson& headers);

}  // namespace celeriac::tq::amqp::detail
