// The socket under an AMQP connection: plain TCP, or TLS through rabbitmq-c's
// OpenSSL socket for amqps://.
#pragma once

#include <amqp.h>

#include <string>

#include "celeriac/tq/amqp/detail/connection.hpp"

namespace celeriac::tq::amqp::detail {

/// Creates the socket `ep` asks for on `state` and connects it (TLS: with the
/// handshake and the certificate checks). On failure returns why, in words
/// that name the host and what to fix, never the password; "" on success.
std::string open_socket(amqp_connection_state_t state, const Endpoint& ep);

}  // namespace celeriac::tq::amqp::detail
