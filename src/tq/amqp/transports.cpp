// Registers the RabbitMQ transport's factories with the tq core's registries.
#include "celeriac/tq/detail/transports.hpp"
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/amqp/control.hpp"
#include "celeriac/tq/amqp/result_backend.hpp"
#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/control.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq::amqp {

void register_transports() {
  register_backend_scheme("rpc", [](const tq::Url& url) -> std::unique_ptr<tq::ResultBackend> {
    return std::make_unique<RpcResultBackend>(url);
  });
  for (const char* scheme : {"amqp", "pyamqp", "amqps"}) {
    register_broker_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<tq::Broker> {
      return std::make_unique<AmqpBroker>(url);
    });
    register_control_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<ControlClient> {
      return std::make_unique<AmqpControlClient>(url);
    });
    register_worker_service(
        scheme, [](const tq::Url& url, WorkerControl& worker) -> std::unique_ptr<WorkerService> {
          return std::make_unique<AmqpWorkerService>(url, worker);
        });
  }
}

}  // namespace celeriac::tq::amqp
