// The default executor of aio::to_thread().
#include <algorithm>
#include <chrono>

#include "celeriac/aio/future_await.hpp"

namespace celeriac::aio::detail {

BlockingPool& BlockingPool::instance() {
  static BlockingPool pool;
  return pool;
}

BlockingPool::BlockingPool()
    : max_threads_(
          std::max<std::size_t>(4, 2 * std::max(1u, std::thread::hardware_concurrency()))) {}

BlockingPool::~BlockingPool() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void BlockingPool::post(std::function<void()> fn) {
  std::unique_lock<std::mutex> g(mu_);
  if (stopping_) throw BrokenExecutor("aio::to_thread: the default executor is shut down");
  jobs_.push_back(std::move(fn));
  if (idle_ == 0 && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { worker(); });
  } else {
    g.unlock();
    cv_.notify_one();
  }
}

void BlockingPool::worker() {
  std::unique_lock<std::mutex> g(mu_);
  for (;;) {
    while (jobs_.empty() && !stopping_) {
      ++idle_;
      cv_.wait(g);
      --idle_;
    }
    if (jobs_.empty()) return;  // stopping and drained
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    g.unlock();
    job();
    job = nullptr;
    g.lock();
  }
}

}  // namespace celeriac::aio::detail
