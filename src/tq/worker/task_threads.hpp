// The threads that run task bodies in the threads and solo pools. Unlike an
// exec::ThreadPool, a thread whose body overran its hard time limit (or was
// revoked with terminate) can be given up: a fresh thread takes its slot at
// once, and the old one exits when the body finally returns.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

namespace celeriac::tq::detail {

/// A fixed number of live task threads. Thread-safe.
class TaskThreads {
 public:
  /// `n` threads named `name` (n >= 1).
  TaskThreads(std::size_t n, std::string name);
  /// shutdown().
  ~TaskThreads();
  TaskThreads(const TaskThreads&) = delete;
  TaskThreads& operator=(const TaskThreads&) = delete;

  /// Runs `fn` on one of the threads (queued while all are busy).
  void post(std::function<void()> fn);
  /// The thread `id` (running an overdue body) leaves the pool: a new
  /// thread replaces it now; `id` exits once its current function returns.
  void abandon(std::thread::id id);
  /// Runs what is queued, then joins every thread, abandoned ones included
  /// (a body that never returns keeps shutdown waiting, as in Celery's warm
  /// shutdown; a warning says which).
  void shutdown();
  /// Threads that take work.
  std::size_t size() const noexcept { return n_; }

 private:
  void start_one();
  void run();

  std::size_t n_;
  std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::list<std::thread> threads_;
  std::unordered_set<std::thread::id> abandoned_;
  bool closed_ = false;
};

}  // namespace celeriac::tq::detail
