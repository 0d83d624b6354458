// The Celery transport on Redis (broker, result backend, control) is built on
// the generic client in celeriac/redis/, which knows nothing of Celery. The
// client's names stay visible as celeriac::tq::redis::Connection etc., as
// they were before the client had a namespace of its own. (Using-declarations,
// not a using-directive: inside tq::redis, `Url` must keep meaning the Redis
// URL and not tq::Url.)
#pragma once

#include "celeriac/redis/connection.hpp"
#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/pool.hpp"
#include "celeriac/redis/pubsub.hpp"
#include "celeriac/redis/reply.hpp"
#include "celeriac/redis/script.hpp"
#include "celeriac/redis/url.hpp"

namespace celeriac::tq::redis {
using celeriac::redis::Backoff;
using celeriac::redis::CertReqs;
using celeriac::redis::connect_with_retry;
using celeriac::redis::Connection;
using celeriac::redis::ConnectionError;
using celeriac::redis::ConnectionPool;
using celeriac::redis::ConnectOptions;
using celeriac::redis::Duration;
using celeriac::redis::is_noscript;
using celeriac::redis::Message;
using celeriac::redis::Pipeline;
using celeriac::redis::PooledConnection;
using celeriac::redis::ProtocolError;
using celeriac::redis::RedisError;
using celeriac::redis::Reply;
using celeriac::redis::ReplyError;
using celeriac::redis::Script;
using celeriac::redis::Subscriber;
using celeriac::redis::TimeoutError;
using celeriac::redis::TlsError;
using celeriac::redis::TlsSettings;
using celeriac::redis::Url;
using celeriac::redis::UrlError;
/// Old home of the script helper, now celeriac::redis::Script.
namespace detail {
using celeriac::redis::is_noscript;
using celeriac::redis::Script;
}  // namespace detail
}  // namespace celeriac::tq::redis
