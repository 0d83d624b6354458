#include "celeriac/tq/amqp/detail/keepalive.hpp"

#include <spdlog/spdlog.h>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::amqp::detail {

Keepalive::Keepalive(std::function<void()> tick, std::chrono::milliseconds period)
    : tick_(std::move(tick)), period_(period) {
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, period_, [this] { return stopping_; })) {
      lock.unlock();
      tick_();
      lock.lock();
    }
  });
}

Keepalive::~Keepalive() {
  stop();
}

void Keepalive::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

void beat(Connection& conn) noexcept {
  if (!conn.is_open()) return;
  try {
    conn.keepalive();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());  // closed; the owner reconnects on next use
  }
}

}  // namespace

void keep_alive(std::mutex& mu, Connection& conn) noexcept {
  std::unique_lock lock(mu, std::try_to_lock);
  if (lock) beat(conn);
}

void keep_alive(std::mutex& mu, std::unique_ptr<Connection>& conn) noexcept {
  std::unique_lock lock(mu, std::try_to_lock);
  if (lock && conn) beat(*conn);
}

}  // namespace celeriac::tq::amqp::detail
