// Registers the Redis transport's factories with the tq core's registries.
#include "celeriac/tq/detail/transports.hpp"

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/result_backend.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::redis {

void register_transports() {
  register_broker_scheme("redis", [](const tq::Url& url) -> std::unique_ptr<tq::Broker> {
    return std::make_unique<RedisBroker>(url);
  });
  register_backend_scheme("redis", [](const tq::Url& url) -> std::unique_ptr<tq::ResultBackend> {
    return std::make_unique<RedisResultBackend>(url);
  });
}

}  // namespace celeriac::tq::redis
