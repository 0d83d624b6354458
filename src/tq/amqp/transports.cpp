// Registers the RabbitMQ transport's factories with the tq core's registries.
#include "celeriac/tq/amqp/broker.hpp"
#include "celeriac/tq/broker.hpp"
#include "celeriac/tq/detail/transports.hpp"

namespace celeriac::tq::amqp {

void register_transports() {
  for (const char* scheme : {"amqp", "pyamqp"}) {
    register_broker_scheme(scheme, [](const tq::Url& url) -> std::unique_ptr<tq::Broker> {
      return std::make_unique<AmqpBroker>(url);
    });
  }
}

}  // namespace celeriac::tq::amqp
