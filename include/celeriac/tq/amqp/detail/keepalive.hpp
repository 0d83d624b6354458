// A background thread that keeps AMQP connections alive with heartbeats while
// their owner does not use them (an idle client, a worker busy with tasks).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "celeriac/tq/amqp/detail/connection.hpp"

namespace celeriac::tq::amqp::detail {

/// Runs `tick` every `period` on its own thread until destroyed.
class Keepalive {
 public:
  explicit Keepalive(std::function<void()> tick,
                     std::chrono::milliseconds period = std::chrono::milliseconds(200));
  ~Keepalive();
  Keepalive(const Keepalive&) = delete;
  Keepalive& operator=(const Keepalive&) = delete;

  /// Stops the thread (idempotent); `tick` is not called after it returns.
  void stop();

 private:
  std::function<void()> tick_;
  std::chrono::milliseconds period_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

/// Sends `conn` a due heartbeat unless `mu` is held (then its owner is using
/// the connection, and rabbitmq-c sends heartbeats while it waits). A dead
/// socket closes the connection; its owner reconnects on next use.
void keep_alive(std::mutex& mu, Connection& conn) noexcept;
/// The same for a connection its owner creates on demand (may be null).
void keep_alive(std::mutex& mu, std::unique_ptr<Connection>& conn) noexcept;

}  // namespace celeriac::tq::amqp::detail
