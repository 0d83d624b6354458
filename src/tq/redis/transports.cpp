// Registers the Redis transport's factories with the tq core's registries.
#include "celeriac/tq/detail/transports.hpp"

#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/redis/broker.hpp"
#include "celeriac/tq/redis/control.hpp"
#include "celeriac/tq/redis/result_backend.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::redis {

void register_event_senders();  // event_sender.cpp (task-sent)

void register_transports() {
  register_event_senders();
  // rediss:// is the same transport over TLS (to_redis_url reads the ssl_* options).
  for (const char* scheme : {"redis", "rediss"}) {
    register_broker_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<tq::Broker> {
      return std::make_unique<RedisBroker>(url);
    });
    register_backend_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<tq::ResultBackend> {
      return std::make_unique<RedisResultBackend>(url);
    });
    register_control_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<ControlClient> {
      return std::make_unique<RedisControlClient>(url);
    });
    register_worker_service(
        scheme, [](const tq::Url& url, WorkerControl& worker) -> std::unique_ptr<WorkerService> {
          return std::make_unique<RedisWorkerService>(url, worker);
        });
  }
}

}  // namespace celeriac::tq::redis
