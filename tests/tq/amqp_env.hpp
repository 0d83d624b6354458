// The RabbitMQ node shared by every test of test_tq_amqp (started on first
// use, stopped when the binary's tests end), and helpers for the tests.
#pragma once

#include <optional>
#include <string>

#include "celeriac/tq/message.hpp"

#include "support/rabbitmq_server.hpp"

namespace celeriac::tq::test {

/// The shared node (with a TLS listener: tls_port()).
RabbitMqServer& rabbit();
/// The certificates of the shared node's TLS listener (rabbit_certs().ca() signed them).
const TlsCerts& rabbit_certs();
/// A queue name no other test uses ("<prefix>-<n>").
std::string unique_queue(const std::string& prefix);
/// The envelope of a `tasks.add(2, 3)` message with id `id` for `queue`.
std::string add_task(const std::string& id, const std::string& queue,
                     std::optional<TimePoint> eta = {});

}  // namespace celeriac::tq::test
