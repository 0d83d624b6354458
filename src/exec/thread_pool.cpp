// ThreadPool: worker loop, stealing, sleeping and waking, shutdown.
#include "celeriac/exec/thread_pool.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "celeriac/sync/detail/futex.hpp"
#include "celeriac/sync/thread_name.hpp"

namespace celeriac::exec {

namespace {
constexpr std::size_t kRingCapacity = 8192;
// How long an idle worker keeps looking for work before it sleeps.
constexpr auto kSpinTime = std::chrono::microseconds(50);
constexpr std::size_t kOverflowBatch = 32;
}  // namespace

bool detail::Worker::help_once() noexcept {
  return pool->run_one(this, nullptr);
}

std::size_t ThreadPool::default_max_workers() noexcept {
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(std::size_t max_workers, std::function<void()> initializer)
    : initializer_(std::move(initializer)), ring_(kRingCapacity) {
  if (max_workers == 0)
    throw std::invalid_argument("ThreadPool: max_workers must be greater than 0");
  workers_.reserve(max_workers);
  for (std::size_t i = 0; i < max_workers; ++i)
    workers_.push_back(std::make_unique<detail::Worker>(this, static_cast<unsigned>(i)));
  idle_list_.reserve(max_workers);
  try {
    for (auto& w : workers_) w->thread = std::thread([this, p = w.get()] { worker_main(p); });
  } catch (...) {
    shutdown(true, true);
    throw;
  }
}

ThreadPool::~ThreadPool() {
  if (running_in_this_thread()) {
    std::fprintf(stderr, "celeriac: a ThreadPool was destroyed by one of its own tasks\n");
    std::abort();
  }
  shutdown(true, false);
  drain(detail::TaskOp::kCancel, nullptr);
}

void ThreadPool::throw_closed() const {
  if (broken()) {
    throw BrokenExecutor("ThreadPool: a thread initializer failed, the pool is not usable anymore");
  }
  throw BrokenExecutor("ThreadPool: cannot schedule new futures after shutdown");
}

void ThreadPool::shutdown(bool wait, bool cancel_futures) {
  if (wait && running_in_this_thread())
    throw InvalidStateError(
        "ThreadPool::shutdown(wait=true) called from one of the pool's own threads would wait for "
        "itself");
  gate_.fetch_or(kShutdownBit, std::memory_order_seq_cst);
  if (cancel_futures) drain(detail::TaskOp::kCancel, nullptr);
  wake_all();
  if (!wait) return;
  std::lock_guard lock(join_mu_);
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
}

void ThreadPool::drain(detail::TaskOp op, const std::exception_ptr* e) noexcept {
  while (ring_.try_consume([] {}, op, e)) {
  }
  detail::Task* list;
  {
    std::lock_guard lock(overflow_mu_);
    list = overflow_head_;
    overflow_head_ = overflow_tail_ = nullptr;
    overflow_size_.store(0, std::memory_order_relaxed);
  }
  while (list) {
    detail::Task* next = list->next;
    list->fn(list, op, e);
    list = next;
  }
}

void ThreadPool::mark_broken(std::exception_ptr cause) noexcept {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(cause);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  {
    // One writer of broken_error_. Not join_mu_: shutdown() holds that while
    // it joins a worker that may be about to fail its initializer too.
    std::lock_guard lock(broken_mu_);
    if (!broken_.load(std::memory_order_relaxed)) {
      broken_error_ = std::make_exception_ptr(BrokenExecutor(
          "ThreadPool: a thread initializer failed, the pool is not usable anymore: " + what));
      broken_.store(true, std::memory_order_release);
    }
  }
  gate_.fetch_or(kBrokenBit, std::memory_order_seq_cst);
  drain(detail::TaskOp::kFail, &broken_error_);
  wake_all();
}

void ThreadPool::overflow_push(detail::Task* t) noexcept {
  t->next = nullptr;
  std::lock_guard lock(overflow_mu_);
  if (overflow_tail_) {
    overflow_tail_->next = t;
  } else {
    overflow_head_ = t;
  }
  overflow_tail_ = t;
  overflow_size_.fetch_add(1, std::memory_order_relaxed);
}

bool ThreadPool::has_work() const noexcept {
  if (ring_.maybe_nonempty() || overflow_size_.load(std::memory_order_seq_cst) != 0) return true;
  for (const auto& w : workers_)
    if (w->deque.maybe_nonempty()) return true;
  return false;
}

bool ThreadPool::run_one(detail::Worker* w, bool* spinning) noexcept {
  const bool broken = broken_.load(std::memory_order_relaxed);
  const detail::TaskOp op = broken ? detail::TaskOp::kFail : detail::TaskOp::kRun;
  const std::exception_ptr* err = broken ? &broken_error_ : nullptr;
  auto found = [&] {
    if (spinning && *spinning) {
      *spinning = false;
      // The last searcher to find work wakes another one, but only if there
      // is more work: a wake-up is a syscall on the path to running this task
      // and the woken worker would only spin. No wake-up is lost: a producer
      // that pushes after has_work() looked sees spinning_ at 0 (both sides
      // are seq_cst) and wakes a sleeper itself.
      if (spinning_.fetch_sub(1, std::memory_order_seq_cst) == 1 && has_work()) notify();
    }
  };
  // 1. Own deque, newest first (hot in cache).
  if (detail::Task* t = w->deque.pop()) {
    found();
    t->fn(t, op, err);
    return true;
  }
  // 2. Submissions from outside, oldest first.
  if (ring_.try_consume(found, op, err)) return true;
  if (overflow_size_.load(std::memory_order_relaxed) != 0) {
    detail::Task* first = nullptr;
    {
      std::lock_guard lock(overflow_mu_);
      std::size_t n = 0;
      std::size_t avail = overflow_size_.load(std::memory_order_relaxed);
      std::size_t take = std::min(kOverflowBatch, avail / workers_.size() + 1);
      while (overflow_head_ && n < take) {
        detail::Task* t = overflow_head_;
        overflow_head_ = t->next;
        if (!first) {
          first = t;
        } else {
          w->deque.push(t);  // the rest of the batch stays stealable
        }
        ++n;
      }
      if (!overflow_head_) overflow_tail_ = nullptr;
      overflow_size_.fetch_sub(n, std::memory_order_relaxed);
    }
    if (first) {
      found();
      first->fn(first, op, err);
      return true;
    }
  }
  // 3. Steal from the others, starting at a random victim.
  const std::size_t n = workers_.size();
  if (n > 1) {
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    std::size_t start = static_cast<std::size_t>(w->rng % n);
    for (std::size_t k = 0; k < n; ++k) {
      detail::Worker* v = workers_[(start + k) % n].get();
      if (v == w) continue;
      if (detail::Task* t = v->deque.steal()) {
        found();
        t->fn(t, op, err);
        return true;
      }
    }
  }
  return false;
}

void ThreadPool::worker_main(detail::Worker* w) {
  detail::tl_worker = w;
  futures::detail::current_wait_helper = w;
  sync::set_current_thread_name("celeriac-pool-" + std::to_string(w->index));
  if (initializer_) {
    try {
      initializer_();
    } catch (...) {
      mark_broken(std::current_exception());
    }
  }
  bool spinning = false;
  for (;;) {
    if (run_one(w, &spinning)) continue;
    // Look for work a little while before sleeping: a task that arrives in
    // the next microseconds costs no futex wake-up.
    if (!spinning) {
      spinning_.fetch_add(1, std::memory_order_seq_cst);
      spinning = true;
    }
    bool got = false;
    const auto until = std::chrono::steady_clock::now() + kSpinTime;
    do {
      for (int i = 0; i < 16; ++i) {
        for (int k = 0; k < 8; ++k) sync::detail::cpu_relax();
        if (run_one(w, &spinning)) {
          got = true;
          break;
        }
      }
    } while (!got && std::chrono::steady_clock::now() < until);
    if (got) continue;
    spinning = false;
    spinning_.fetch_sub(1, std::memory_order_seq_cst);

    const std::uint64_t g = gate_.load(std::memory_order_seq_cst);
    if ((g & kClosedMask) != 0 && g < kInFlight && !has_work()) break;
    spinning = sleep(w);
  }
  futures::detail::current_wait_helper = nullptr;
  detail::tl_worker = nullptr;
}

bool ThreadPool::sleep(detail::Worker* w) noexcept {
  {
    std::lock_guard lock(idle_mu_);
    w->wake_word.store(0, std::memory_order_relaxed);
    w->in_idle = true;
    idle_list_.push_back(w);
    sleeping_.fetch_add(1, std::memory_order_seq_cst);
  }
  auto leave_idle = [&]() -> bool {  // true: a waker already took us (spin token)
    std::lock_guard lock(idle_mu_);
    if (!w->in_idle) return true;
    w->in_idle = false;
    idle_list_.erase(std::find(idle_list_.begin(), idle_list_.end(), w));
    sleeping_.fetch_sub(1, std::memory_order_seq_cst);
    return false;
  };
  for (;;) {
    sync::detail::seq_cst_fence();
    const std::uint64_t g = gate_.load(std::memory_order_seq_cst);
    const bool closing = (g & kClosedMask) != 0;
    if (has_work() || (closing && g < kInFlight)) return leave_idle();
    sync::detail::futex_wait(w->wake_word, 0,
                             closing ? std::chrono::nanoseconds(std::chrono::milliseconds(1))
                                     : std::chrono::nanoseconds(-1));
    {
      std::lock_guard lock(idle_mu_);
      if (!w->in_idle) return true;
    }
  }
}

void ThreadPool::wake_one() noexcept {
  int zero = 0;
  if (!spinning_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  detail::Worker* v = nullptr;
  {
    std::lock_guard lock(idle_mu_);
    if (!idle_list_.empty()) {
      v = idle_list_.back();
      idle_list_.pop_back();
      v->in_idle = false;
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      v->wake_word.store(1, std::memory_order_release);
    }
  }
  if (!v) {
    spinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  sync::detail::futex_wake(v->wake_word, 1);
}

void ThreadPool::wake_all() noexcept {
  std::vector<detail::Worker*> woken;
  {
    std::lock_guard lock(idle_mu_);
    woken.swap(idle_list_);
    for (detail::Worker* v : woken) {
      v->in_idle = false;
      sleeping_.fetch_sub(1, std::memory_order_seq_cst);
      spinning_.fetch_add(1, std::memory_order_seq_cst);
      v->wake_word.store(1, std::memory_order_release);
    }
    idle_list_.reserve(workers_.size());
  }
  for (detail::Worker* v : woken) sync::detail::futex_wake(v->wake_word, 1);
}

}  // namespace celeriac::exec
