// Registers the Redis transport's factories with the tq core's registries.
#include "celeriac/tq/detail/transports.hpp"

namespace celeriac::tq::redis {

void register_transports() {
  // The broker, result backend, control client and worker services register
  // here as they land (see docs/tq-redis.md).
}

}  // namespace celeriac::tq::redis
