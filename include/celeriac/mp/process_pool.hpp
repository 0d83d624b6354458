// ProcessPool (alias ProcessPoolExecutor): run functions in a pool of worker
// processes, with Python's concurrent.futures.ProcessPoolExecutor API and
// without its weak points: a worker that crashes fails only the task it was
// running, and the pool replaces it and keeps serving.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/futures.hpp"
#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/detail/remote.hpp"
#include "celeriac/mp/detail/task.hpp"
#include "celeriac/mp/errors.hpp"

namespace celeriac::mp {

/// A function and its arguments, packed to be run in a worker: the pool's
/// initializer. Same rules as submit() (function pointer or captureless
/// lambda, serializable arguments; checked at compile time).
class Call {
 public:
  Call() = default;
  /// Packs fn(args...) (function pointer or captureless lambda; serializable arguments).
  template <class F, class... Args>
  explicit Call(F fn, const Args&... args) {
    static_assert(detail::check_task<F, std::decay_t<Args>...>());
    call_ = std::make_shared<detail::TaskCall>(
        detail::make_call(&detail::invoke_task<F, std::decay_t<Args>...>, fn, args...));
  }
  /// Whether a call is held.
  explicit operator bool() const noexcept { return static_cast<bool>(call_); }
  /// The packed call.
  const detail::TaskCall& get() const { return *call_; }

 private:
  std::shared_ptr<detail::TaskCall> call_;
};

/// Settings of a ProcessPool (Python's ProcessPoolExecutor arguments).
struct ProcessPoolOptions {
  /// Number of worker processes; 0 means std::thread::hardware_concurrency().
  std::size_t max_workers = 0;
  /// Run once in each worker before its first task. If it throws or the
  /// worker dies during it, the pool is broken (BrokenExecutor naming the
  /// cause), as Python's: pending futures fail, later submits throw, and
  /// that worker runs no task.
  Call initializer;
  /// A worker is replaced by a fresh process after this many tasks (0: never).
  std::size_t max_tasks_per_child = 0;
  /// A worker whose peak resident memory (VmHWM, KiB, as Celery's
  /// --max-memory-per-child) is above this after a task is replaced by a
  /// fresh process once that task's result is in (0: never). Its tasks
  /// all complete; only later ones go to other workers.
  std::size_t max_memory_per_child = 0;
  /// Default per-task time limit; a task still running past it fails with
  /// TimeoutError and its worker is killed and replaced. nullopt: no limit.
  std::optional<std::chrono::steady_clock::duration> task_timeout;
  /// Tasks sent ahead to a busy worker (they wait in its socket); more hides
  /// latency, 1 keeps every queued task available to any worker. 0 (auto):
  /// 2, or up to 16 while the pool's recent tasks took under 100 us each
  /// (small tasks then travel in batches, a few per system call); nothing is
  /// queued behind a task that has run for over 1 ms.
  std::size_t prefetch = 0;
};

/// Per-submit settings.
struct TaskOptions {
  /// Overrides ProcessPoolOptions::task_timeout for this task.
  std::optional<std::chrono::steady_clock::duration> timeout;
};

namespace detail {

/// A task on the parent side: the packed call and the promise to complete.
class PoolTask {
 public:
  virtual ~PoolTask() { close_fds(call.fds); }
  /// False when the future was cancelled before the task started.
  virtual bool set_running() = 0;
  /// Completes the future from a kResult or kError frame.
  virtual void complete(Frame& f) noexcept = 0;
  virtual void fail(std::exception_ptr e) noexcept = 0;
  /// Cancels the future if it has not started; returns whether it did.
  virtual bool cancel() noexcept = 0;
  /// "task #7 (crash_segv)".
  std::string name() const;

  TaskCall call;
  std::uint64_t seq = 0;
  std::optional<Clock::duration> timeout;
  bool started = false;
};

template <class R>
class PoolTaskT final : public PoolTask {
 public:
  Future<R> future() { return promise_.get_future(); }
  bool set_running() override { return promise_.set_running_or_notify_cancel(); }
  void complete(Frame& f) noexcept override {
    if (f.kind == kError) {
      promise_.try_set_exception(decode_error_payload(f.body()));
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        promise_.try_set_value();
      } else {
        FdScope scope(nullptr, &f.fds);
        promise_.try_set_value(unpack<R>(f.body()));
      }
    } catch (...) {
      promise_.try_set_exception(std::current_exception());
    }
  }
  void fail(std::exception_ptr e) noexcept override { promise_.try_set_exception(std::move(e)); }
  bool cancel() noexcept override {
    try {
      return promise_.get_future().cancel();
    } catch (...) {
      return false;
    }
  }

 private:
  Promise<R> promise_;
};

}  // namespace detail

/// The lazily consumed, in-order results of ProcessPool::map(). Iterating
/// waits for each chunk in turn and rethrows the first failure at its
/// position (TimeoutError past map's timeout).
template <class R>
class MapResult {
 public:
  /// The results of `chunks`, with an optional deadline for all of them.
  MapResult(std::vector<Future<std::vector<R>>> chunks,
            std::optional<std::chrono::steady_clock::time_point> deadline)
      : chunks_(std::move(chunks)), deadline_(deadline) {}

  /// Input iterator over the results, in input order (blocks for each).
  class iterator {
   public:
    /// A result.
    using value_type = R;
    /// Distance type.
    using difference_type = std::ptrdiff_t;
    /// Input iterator.
    using iterator_category = std::input_iterator_tag;
    iterator() = default;
    /// Iterator at the first result of `m` (null: the end).
    explicit iterator(MapResult* m) : m_(m) { settle(); }
    /// The current result (rethrows its task's exception).
    R& operator*() const { return current_[pos_]; }
    /// Pointer access to the current result.
    R* operator->() const { return &current_[pos_]; }
    /// Moves to the next result (blocks for it; TimeoutError past the deadline).
    iterator& operator++() {
      ++pos_;
      settle();
      return *this;
    }
    /// Post-increment (as ++it).
    void operator++(int) { ++*this; }
    /// True after the last result.
    friend bool operator==(const iterator& it, std::default_sentinel_t) { return it.m_ == nullptr; }

   private:
    void settle() {
      while (m_) {
        if (pos_ < current_.size()) return;
        if (chunk_ == m_->chunks_.size()) {
          m_ = nullptr;
          return;
        }
        auto& f = m_->chunks_[chunk_++];
        if (m_->deadline_) {
          auto left = *m_->deadline_ - std::chrono::steady_clock::now();
          if (!f.wait_for(left > left.zero() ? left : left.zero()))
            throw TimeoutError(
                "celeriac::mp::ProcessPool::map: results not ready within the timeout");
        }
        current_ = std::move(f).result();
        pos_ = 0;
      }
    }
    MapResult* m_ = nullptr;
    std::size_t chunk_ = 0, pos_ = 0;
    mutable std::vector<R> current_;
  };

  /// Iterate once (an input range).
  iterator begin() { return iterator(this); }
  /// The end sentinel.
  std::default_sentinel_t end() const { return {}; }
  /// All results at once, in order.
  std::vector<R> to_vector() {
    std::vector<R> out;
    for (auto& v : *this) out.push_back(std::move(v));
    return out;
  }
  /// The futures of the chunks.
  const std::vector<Future<std::vector<R>>>& chunk_futures() const { return chunks_; }

 private:
  std::vector<Future<std::vector<R>>> chunks_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
};

/// A pool of worker processes forked from the fork server (see
/// fork_server.hpp: call mp::init() at the top of main). The workers start
/// with the first submit (as Python's), so the first submit always returns a
/// future, even when the initializer is about to fail. One thread per
/// pool, started by the constructor, reads the workers' replies (epoll),
/// completes the futures (so done-callbacks run on it), enforces timeouts
/// and replaces dead workers. Thread-safe: submit from any thread.
class ProcessPool {
 public:
  /// max_workers 0: one per CPU.
  explicit ProcessPool(std::size_t max_workers = 0);
  /// A pool with these settings.
  explicit ProcessPool(ProcessPoolOptions options);
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;
  /// shutdown(wait=true): waits for submitted work and reaps every worker.
  ~ProcessPool();

  /// Runs fn(args...) in a worker; the future completes with its result, or
  /// with: the exception it threw (std exceptions keep their type, others
  /// arrive as RemoteError), WorkerDiedError when the worker died running
  /// it, TimeoutError past the task timeout. BrokenExecutor when the pool is
  /// shut down or broken. fn: function pointer or captureless lambda;
  /// arguments and result: Serializable (compile-time checks).
  template <class F, class... Args>
  auto submit(F fn, const Args&... args) {
    return submit_with(TaskOptions{}, fn, args...);
  }
  /// As submit(), with per-task settings (a time limit).
  template <class F, class... Args>
  auto submit_with(const TaskOptions& options, F fn, const Args&... args) {
    static_assert(detail::check_task<F, std::decay_t<Args>...>());
    using R = std::invoke_result_t<F&, std::decay_t<Args>&&...>;
    auto task = std::make_unique<detail::PoolTaskT<R>>();
    task->call = detail::make_call(&detail::invoke_task<F, std::decay_t<Args>...>, fn, args...);
    task->timeout = options.timeout;
    Future<R> f = task->future();
    submit_task(std::move(task));
    return f;
  }

  /// fn applied to every element of `items`, in order, lazily consumed.
  /// Elements are sent in chunks of `chunksize` (one task each; much faster
  /// for small tasks). All chunks are submitted at once, as Python's.
  /// `timeout` counts from this call.
  template <class F, std::ranges::input_range Range>
  auto map(F fn, Range&& items, std::size_t chunksize = 1,
           std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt) {
    using A = std::decay_t<std::ranges::range_reference_t<Range>>;
    static_assert(detail::check_task<F, A>());
    using R = std::decay_t<std::invoke_result_t<F&, A&&>>;
    static_assert(!std::is_void_v<R>, "ProcessPool::map needs a function that returns a value");
    static_assert(Serializable<std::vector<A>> && Serializable<std::vector<R>>);
    if (chunksize == 0) throw std::invalid_argument("ProcessPool::map: chunksize must be >= 1");
    std::optional<std::chrono::steady_clock::time_point> deadline;
    if (timeout) deadline = std::chrono::steady_clock::now() + *timeout;
    std::vector<Future<std::vector<R>>> futures;
    std::vector<A> chunk;
    chunk.reserve(chunksize);
    auto flush = [&] {
      auto task = std::make_unique<detail::PoolTaskT<std::vector<R>>>();
      task->call = detail::make_call(&detail::invoke_chunk<F, A>, fn, chunk);
      futures.push_back(task->future());
      submit_task(std::move(task));
      chunk.clear();
    };
    for (auto&& item : items) {
      chunk.push_back(item);
      if (chunk.size() == chunksize) flush();
    }
    if (!chunk.empty()) flush();
    return MapResult<R>(std::move(futures), deadline);
  }

  /// Stops accepting work. wait: block until every submitted task is done
  /// and every worker reaped. cancel_futures: cancel tasks not yet started.
  void shutdown(bool wait = true, bool cancel_futures = false);

  /// Number of worker processes the pool keeps.
  std::size_t max_workers() const noexcept;
  /// Pids of the current workers (none before the first submit).
  std::vector<pid_t> pids() const;

 private:
  struct Impl;
  void submit_task(std::unique_ptr<detail::PoolTask> task);
  std::unique_ptr<Impl> impl_;
};

using ProcessPoolExecutor = ProcessPool;

}  // namespace celeriac::mp
