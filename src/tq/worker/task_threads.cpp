#include "task_threads.hpp"

#include <spdlog/spdlog.h>

#include "celeriac/sync/thread_name.hpp"

namespace celeriac::tq::detail {

TaskThreads::TaskThreads(std::size_t n, std::string name) : n_(n), name_(std::move(name)) {
  std::lock_guard lock(mu_);
  for (std::size_t i = 0; i < n_; ++i) start_one();
}

TaskThreads::~TaskThreads() {
  shutdown();
}

void TaskThreads::start_one() {  // mu_ held
  threads_.emplace_back([this] { run(); });
}

void TaskThreads::post(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(fn));
  }
  cv_.notify_one();
}

void TaskThreads::abandon(std::thread::id id) {
  std::lock_guard lock(mu_);
  if (closed_ || !abandoned_.insert(id).second) return;
  start_one();
}

void TaskThreads::run() {
  sync::set_current_thread_name(name_);
  const auto me = std::this_thread::get_id();
  std::unique_lock lock(mu_);
  for (;;) {
    if (abandoned_.erase(me)) return;  // replaced while its body ran: it leaves
    cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closed and drained
    auto fn = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      fn();
    } catch (const std::exception& e) {
      spdlog::error("task thread: unexpected exception: {}", e.what());
    }
    lock.lock();
  }
}

void TaskThreads::shutdown() {
  std::list<std::thread> threads;
  std::size_t stuck;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    threads.swap(threads_);
    stuck = abandoned_.size();
  }
  cv_.notify_all();
  if (stuck)
    spdlog::warn(
        "waiting for {} task thread(s) whose bodies overran a time limit or were "
        "terminated",
        stuck);
  for (auto& t : threads)
    if (t.joinable()) t.join();
}

}  // namespace celeriac::tq::detail
