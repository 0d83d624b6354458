#include "amqp_env.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>

namespace celeriac::tq::test {

namespace {

std::mutex node_mu;
std::unique_ptr<TlsCerts> certs;  // the node's TLS listener serves these
std::unique_ptr<RabbitMqServer> node;

// Stops the node after the last test, by PID (the destructor).
class RabbitEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    std::lock_guard lock(node_mu);
    node.reset();
    certs.reset();
  }
};

[[maybe_unused]] auto* const registered =
    ::testing::AddGlobalTestEnvironment(new RabbitEnvironment);

}  // namespace

RabbitMqServer& rabbit() {
  std::lock_guard lock(node_mu);
  if (!node) {
    certs = std::make_unique<TlsCerts>();
    node = std::make_unique<RabbitMqServer>(certs.get());
  }
  return *node;
}

const TlsCerts& rabbit_certs() {
  rabbit();
  std::lock_guard lock(node_mu);
  return *certs;
}

std::string unique_queue(const std::string& prefix) {
  static std::atomic<int> n{0};
  return prefix + "-" + std::to_string(++n);
}

std::string add_task(const std::string& id, const std::string& queue,
                     std::optional<TimePoint> eta) {
  TaskMessage m;
  m.id = id;
  m.task = "tasks.add";
  m.args = Json::array({2, 3});
  m.queue = queue;
  m.eta = eta;
  return encode(m);
}

}  // namespace celeriac::tq::test
