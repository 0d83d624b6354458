// Link-time seam for optional transports compiled into celeriac_tq.
#pragma once

namespace celeriac::tq::redis {
/// Defined in src/tq/redis/*.cpp when that folder has sources (the build then
/// defines CELERIAC_TQ_WITH_REDIS). Registers the "redis" (and "rediss")
/// broker, backend, control-client and worker-service factories. The core
/// calls it once, before the first make_broker/make_backend/... lookup.
void register_transports();
}  // namespace celeriac::tq::redis

namespace celeriac::tq::amqp {
/// Defined in src/tq/amqp/*.cpp (the build then defines CELERIAC_TQ_WITH_AMQP).
/// Registers the "amqp" and "pyamqp" broker, control-client and worker-service
/// factories and the "rpc" result backend.
void register_transports();
}  // namespace celeriac::tq::amqp

namespace celeriac::tq::monitor {
/// Defined in src/tq/monitor: registers remote control and worker events
/// for "memory" and "sqlite" (the LocalBus carriers).
void register_transports();
}  // namespace celeriac::tq::monitor
