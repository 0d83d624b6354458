// Errors of the Redis client (the tq transport built on it throws them too).
#pragma once

#include <string>

#include "celeriac/error.hpp"

namespace celeriac::redis {

/// Base of the Redis layer's errors (other than timeouts).
class RedisError : public celeriac::Error {
 public:
  using celeriac::Error::Error;
};

/// The server cannot be reached, refused the connection, or closed it; the
/// message names the address. The connection is unusable afterwards.
class ConnectionError : public RedisError {
 public:
  using RedisError::RedisError;
};

/// The server answered a command with an error reply (-ERR ..., -WRONGTYPE ...).
/// The connection stays usable.
class ReplyError : public RedisError {
 public:
  using RedisError::RedisError;
};

/// The bytes from the server are not valid RESP; the connection is closed.
class ProtocolError : public RedisError {
 public:
  using RedisError::RedisError;
};

/// A redis:// URL that cannot be parsed; the message quotes it.
class UrlError : public RedisError {
 public:
  using RedisError::RedisError;
};

/// A Redis operation ran out of time. A command that timed out mid-reply
/// leaves the connection closed (the reply stream is out of step).
class TimeoutError : public celeriac::TimeoutError {
 public:
  using celeriac::TimeoutError::TimeoutError;
};

}  // namespace celeriac::redis
