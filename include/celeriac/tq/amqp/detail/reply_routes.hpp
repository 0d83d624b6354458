// Process-wide routes for the rpc:// backend: which reply queue a received
// task's results go to (recorded by the broker when it hands out a delivery,
// read by the backend when the worker stores a result), and the reply queue
// of this process's rpc:// client (stamped on outgoing tasks without one).
#pragma once

#include <optional>
#include <string>

#include "celeriac/tq/amqp/detail/connection.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::amqp::detail {

/// Remembers that results of `task_id` go to `reply_to` (bounded table).
void remember_reply_to(const std::string& task_id, const std::string& reply_to);
/// The reply queue of `task_id`; forgets it when `final` (a ready state).
std::optional<std::string> reply_to_of(const std::string& task_id, bool final);
/// This process's reply queue (Celery's app oid): a fresh UUID per process.
/// Every task published without a reply_to gets it, as Celery does, and the
/// rpc:// backend consumes it.
const std::string& client_reply_queue();
/// Declares the reply queue as Celery's RPC backend does (not durable,
/// auto-delete, x-expires = result_expires 1 day).
QueueSpec reply_queue_spec();
/// Records the URL of the last AMQP broker made in this process (rpc://
/// without a host uses it).
void remember_broker_url(const Url& url);
/// That URL, if any.
std::optional<Url> last_broker_url();

}  // namespace celeriac::tq::amqp::detail
