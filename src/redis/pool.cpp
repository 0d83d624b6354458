#include "celeriac/redis/pool.hpp"

namespace celeriac::redis {

PooledConnection::~PooledConnection() {
  if (conn_ && conn_->is_open()) pool_->give_back(std::move(*conn_));
}

ConnectionPool::ConnectionPool(Url url, ConnectOptions opts,
                               std::chrono::milliseconds reconnect_timeout, std::size_t max_idle)
    : url_(std::move(url)),
      opts_(opts),
      reconnect_timeout_(reconnect_timeout),
      max_idle_(max_idle) {}

PooledConnection ConnectionPool::acquire() {
  return acquire_until(std::chrono::steady_clock::now() + reconnect_timeout_);
}

PooledConnection ConnectionPool::acquire_until(std::chrono::steady_clock::time_point deadline) {
  {
    std::lock_guard lk(mu_);
    while (!idle_.empty()) {
      Connection c = std::move(idle_.back());
      idle_.pop_back();
      if (c.is_open()) return PooledConnection(*this, std::move(c));
    }
  }
  return PooledConnection(*this, connect_with_retry(url_, deadline, opts_));
}

void ConnectionPool::give_back(Connection c) {
  std::lock_guard lk(mu_);
  if (idle_.size() < max_idle_) idle_.push_back(std::move(c));
}

void ConnectionPool::clear() {
  std::vector<Connection> old;
  {
    std::lock_guard lk(mu_);
    old.swap(idle_);
  }
}

}  // namespace celeriac::redis
