// EventLoop: asyncio's event loop for C++. One loop runs on one thread
// (several loops may run, one per thread). It owns an epoll instance (edge
// triggered, file descriptors registered once), an eventfd for wake-ups from
// other threads, a timer heap, and a run queue that never makes a syscall for
// work scheduled from the loop's own thread.
//
// This header also defines Suspension, the building block of every awaitable
// that parks a task until something happens (a timer, an fd, a lock...): it
// is how cancellation reaches a suspended task. See docs/aio-internals.md.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "celeriac/aio/detail/frame_alloc.hpp"
#include "celeriac/aio/detail/work.hpp"
#include "celeriac/error.hpp"
#include "celeriac/futures/future.hpp"

namespace celeriac::aio {

/// The loop's clock. loop.time() is this clock's time, cached once per tick
/// (or a virtual time that only moves when every task sleeps).
using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

template <class T>
class Task;
template <class T>
class TaskHandle;
class EventLoop;

/// Settings of an EventLoop.
struct LoopOptions {
  /// asyncio's debug mode: warns about slow callbacks and about tasks
  /// destroyed without being awaited. Also on when CELERIAC_AIO_DEBUG=1.
  bool debug = false;
  /// In debug mode, a callback or task step running longer than this is
  /// reported (asyncio's loop.slow_callback_duration).
  Duration slow_callback_duration = std::chrono::milliseconds(100);
  /// Virtual time for tests: loop.time() starts at the real time but then
  /// jumps straight to the next timer whenever no work is ready and nothing
  /// waits for a file descriptor or another thread. Timer tests become fast
  /// and exact.
  bool virtual_clock = false;
};

namespace detail {

/// A timer in the loop's heap.
struct TimerNode {
  static constexpr std::uint32_t kNotQueued = 0xffffffffu;
  std::int64_t deadline = 0;  // loop time, ns
  std::uint64_t seq = 0;      // FIFO among equal deadlines
  std::uint32_t index = kNotQueued;
  void (*fire)(TimerNode*) noexcept = nullptr;
  bool queued() const noexcept { return index != kNotQueued; }
};

/// Called when a task finishes (intrusive, linked into the task).
struct DoneListener : ListNode {
  void (*on_done)(DoneListener*, TaskCore*) noexcept = nullptr;
};

}  // namespace detail

/// A point where a task is suspended, waiting to be woken by the loop.
///
/// Every awaitable that parks a task (sleep, fd readiness, locks, queues,
/// futures...) embeds one (usually as a base class) and follows this protocol,
/// all on the loop's thread:
///   await_suspend(h): `if (!begin(h, &hook)) return false;` then register
///                     itself wherever it waits, and return true;
///   the event:        unregister, then `wake()` (schedules the resumption);
///   await_resume():   `end();` first: it throws CancelledError when the
///                     wait was cancelled.
/// begin() returns false when the task has a pending cancel(): the awaitable
/// must then not register and not suspend; end() will throw CancelledError.
/// When the task is cancelled while suspended, the loop calls the hook: it
/// unregisters the awaitable and returns true (the task resumes with
/// CancelledError), or passes the cancellation on (e.g. to an awaited task)
/// and returns false to keep waiting. An awaitable's destructor must remove
/// any registration left (the loop destroys frames of unfinished tasks when
/// it closes).
class Suspension : private detail::Work {
 public:
  /// Called when the suspended task is cancelled: true to resume it with CancelledError, false to
  /// keep waiting.
  using CancelHook = bool (*)(Suspension&) noexcept;

  Suspension() noexcept = default;
  Suspension(const Suspension&) = delete;
  Suspension& operator=(const Suspension&) = delete;

  /// Records the coroutine to resume; false if a cancellation is pending
  /// (then do not suspend). Throws Error outside a running event loop.
  bool begin(std::coroutine_handle<> h, CancelHook on_cancel = nullptr);
  /// Schedules the resumption (on the loop thread; later calls are no-ops).
  void wake() noexcept;
  /// Call first in await_resume: throws CancelledError if cancelled.
  void end() {
    state_ = kIdle;
    if (cancelled_) {
      cancelled_ = false;
      throw CancelledError();
    }
  }
  /// Suspended and registered (begin() done, not yet woken).
  bool armed() const noexcept { return state_ == kArmed; }
  /// Woken, resumption queued.
  bool woken() const noexcept { return state_ == kScheduled; }
  /// The loop the suspension belongs to (valid after begin()).
  EventLoop& loop() const noexcept { return *loop_; }
  /// The task that is suspended here (null outside tasks).
  detail::TaskCore* task() const noexcept { return task_; }

 private:
  friend class EventLoop;
  friend class detail::TaskCore;
  enum : std::uint8_t { kIdle, kArmed, kScheduled };
  static void run_work(Work* w, detail::WorkOp op, std::string* out) noexcept;
  /// The task was cancelled while suspended here.
  void request_cancel() noexcept;

  std::coroutine_handle<> handle_;
  EventLoop* loop_ = nullptr;
  detail::TaskCore* task_ = nullptr;
  CancelHook hook_ = nullptr;
  std::uint8_t state_ = kIdle;
  bool cancelled_ = false;
};

namespace detail {

/// The bookkeeping of a spawned task (asyncio.Task without the result, which
/// lives in the root coroutine's promise). Loop thread only; reference
/// counted by TaskHandles and by the loop while the task runs.
class TaskCore : public Work, public ListNode /* in the loop's list of tasks */ {
 public:
  enum State : std::uint8_t { kScheduled, kStarted, kDone };
  enum Outcome : std::uint8_t { kNone, kValue, kError, kCancelled };

  TaskCore(EventLoop* loop, std::coroutine_handle<> coro, std::string&& name);
  TaskCore(const TaskCore&) = delete;
  TaskCore& operator=(const TaskCore&) = delete;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) destroy();
  }

  /// asyncio.Task.cancel(): false when already done.
  bool cancel() noexcept;
  /// Number of pending cancel() requests (asyncio.Task.cancelling()).
  std::uint32_t cancelling() const noexcept { return cancel_requests_; }
  /// Decrements the count of cancel requests (asyncio.Task.uncancel()).
  std::uint32_t uncancel() noexcept {
    if (cancel_requests_ > 0 && --cancel_requests_ == 0) must_cancel_ = false;
    return cancel_requests_;
  }
  bool done() const noexcept { return state_ == kDone; }
  Outcome outcome() const noexcept { return outcome_; }
  const std::exception_ptr& error() const noexcept { return error_; }
  void mark_retrieved() noexcept { retrieved_ = true; }
  std::string name() const;
  std::uint64_t id() const noexcept { return id_; }
  EventLoop* loop() const noexcept { return loop_; }
  std::coroutine_handle<> coro() const noexcept { return coro_; }

  /// Calls l->on_done(l, this) when the task finishes (at once if done).
  void add_listener(DoneListener* l) noexcept;

  /// Called by the root coroutine's final_suspend.
  void finish(std::exception_ptr error) noexcept;
  /// Loop closing: destroys the coroutine of an unfinished task.
  void abandon() noexcept;

 private:
  friend class celeriac::aio::EventLoop;
  friend class celeriac::aio::Suspension;
  static void run_work(Work* w, WorkOp op, std::string* out) noexcept;
  void destroy() noexcept;

 public:
  Suspension* waiting_on = nullptr;

 private:
  EventLoop* loop_;
  std::coroutine_handle<> coro_;
  List listeners_;
  std::string* name_ = nullptr;
  std::uint64_t id_ = 0;
  std::uint32_t refs_ = 1;  // the loop's reference, dropped when done
  std::uint32_t cancel_requests_ = 0;
  std::exception_ptr error_;
  State state_ = kScheduled;
  Outcome outcome_ = kNone;
  bool must_cancel_ = false;
  bool retrieved_ = false;

 public:
  static void* operator new(std::size_t n) { return frame_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_deallocate(p, n); }
};

/// Base of call_later's callbacks: a timer, then a run-queue entry.
struct TimerCallbackBase : TimerNode, Work {
  TimerCallbackBase() noexcept {
    fire = &fire_fn;
    Work::fn = &work_fn;
  }
  virtual ~TimerCallbackBase() = default;
  static void fire_fn(TimerNode* t) noexcept;
  static void work_fn(Work* w, WorkOp op, std::string* out) noexcept;
  virtual void invoke() = 0;
  virtual const char* type_name() const noexcept = 0;
  void add_ref() noexcept { ++refs; }
  void release() noexcept {
    if (--refs == 0) delete this;
  }
  EventLoop* loop = nullptr;
  std::uint32_t refs = 1;
  bool cancelled = false;
};

template <class F>
struct TimerCallback final : TimerCallbackBase {
  explicit TimerCallback(F f) : fn_(std::move(f)) {}
  void invoke() override { fn_(); }
  const char* type_name() const noexcept override { return typeid(F).name(); }
  F fn_;
};

class FdState;

}  // namespace detail

/// A callback scheduled with call_later/call_at; cancel() unschedules it.
/// Loop thread only.
class TimerHandle {
 public:
  TimerHandle() = default;
  /// A handle on timer `cb` (internal: made by call_later/call_at).
  explicit TimerHandle(detail::TimerCallbackBase* cb) noexcept : cb_(cb) {}
  /// Another handle on the same timer.
  TimerHandle(const TimerHandle& o) noexcept : cb_(o.cb_) {
    if (cb_) cb_->add_ref();
  }
  /// Takes over `o`'s timer.
  TimerHandle(TimerHandle&& o) noexcept : cb_(std::exchange(o.cb_, nullptr)) {}
  /// Handles `o`'s timer instead of this one's.
  TimerHandle& operator=(TimerHandle o) noexcept {
    std::swap(cb_, o.cb_);
    return *this;
  }
  ~TimerHandle() {
    if (cb_) cb_->release();
  }
  /// Unschedules the callback if it has not run yet.
  void cancel() noexcept;
  /// Whether cancel() was called.
  bool cancelled() const noexcept { return cb_ && cb_->cancelled; }
  /// The loop time it is (was) due at.
  TimePoint when() const noexcept {
    return TimePoint(std::chrono::nanoseconds(cb_ ? cb_->deadline : 0));
  }

 private:
  detail::TimerCallbackBase* cb_ = nullptr;
};

/// The event loop. Create it on the thread that runs it; run one loop per
/// thread. All members are for the loop's thread except those marked
/// thread-safe.
class EventLoop {
 public:
  /// A loop (not running yet: run_forever() or run_until_complete()).
  explicit EventLoop(LoopOptions options = {});
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  /// Closes the loop: unfinished tasks are destroyed (in debug mode with a
  /// warning), pending callbacks dropped, the default executor is not touched.
  ~EventLoop();

  /// The loop running on this thread; Error if none runs
  /// (asyncio.get_running_loop()).
  static EventLoop& current() {
    if (EventLoop* l = detail::tls_context.loop) [[likely]]
      return *l;
    throw_no_running_loop();
  }
  /// As current(), or null.
  static EventLoop* current_or_null() noexcept { return detail::tls_context.loop; }

  /// The loop's time (cached once per tick; virtual with virtual_clock).
  TimePoint time() const noexcept { return TimePoint(std::chrono::nanoseconds(now_)); }

  /// Runs until stop() is called.
  void run_forever();
  /// Runs the task to completion and returns its result (or rethrows).
  template <class T>
  T run_until_complete(Task<T> task);
  /// Makes run_forever() return after the current tick. Thread-safe.
  void stop() noexcept;
  /// Whether the loop is running (on some thread).
  bool is_running() const noexcept { return running_; }
  /// True when called on the thread running this loop.
  bool in_loop_thread() const noexcept { return detail::tls_context.loop == this; }

  /// Schedules fn() to run on the next tick (FIFO). Loop thread only;
  /// no syscall, no lock.
  template <class F>
  void call_soon(F&& fn) {
    schedule(new detail::CallbackWork<std::decay_t<F>>(std::forward<F>(fn)));
  }
  /// Schedules fn() from any thread. Thread-safe; wakes the loop through its
  /// eventfd only when the cross-thread queue goes from empty to non-empty.
  template <class F>
  void call_soon_threadsafe(F&& fn) {
    schedule_threadsafe(new detail::CallbackWork<std::decay_t<F>>(std::forward<F>(fn)));
  }
  /// Executor concept: same as call_soon_threadsafe.
  template <class F>
  void post(F&& fn) {
    call_soon_threadsafe(std::forward<F>(fn));
  }
  /// Runs fn() after `delay` (loop thread only).
  template <class F>
  TimerHandle call_later(Duration delay, F&& fn) {
    return call_at(time() + delay, std::forward<F>(fn));
  }
  /// Runs fn() at loop time `when` (loop thread only).
  template <class F>
  TimerHandle call_at(TimePoint when, F&& fn) {
    auto* cb = new detail::TimerCallback<std::decay_t<F>>(std::forward<F>(fn));
    cb->loop = this;
    cb->deadline = when.time_since_epoch().count();
    add_timer(cb);  // the heap's reference
    cb->add_ref();  // the handle's
    return TimerHandle(cb);
  }

  /// Wraps the coroutine in a task scheduled on this loop
  /// (asyncio.create_task). Loop thread only.
  template <class T>
  TaskHandle<T> spawn(Task<T> task, std::string name = {});
  /// Same as spawn() (asyncio's name).
  template <class T>
  TaskHandle<T> create_task(Task<T> task, std::string name = {}) {
    return spawn(std::move(task), std::move(name));
  }
  /// From any thread: runs the task on this loop and returns a Future of its
  /// result (asyncio.run_coroutine_threadsafe). Cancelling the Future
  /// cancels the task.
  template <class T>
  Future<T> spawn_threadsafe(Task<T> task);

  /// Runs the loop until `task` is done (Error if stop() came first).
  void run_until_done(detail::TaskCore* task);
  /// asyncio.run's cleanup: cancels every unfinished task and runs the loop
  /// until they have all finished.
  void cancel_all_tasks();

  /// Number of tasks that have not finished.
  std::size_t pending_tasks() const noexcept { return pending_tasks_; }

  /// Whether debug mode is on.
  bool debug() const noexcept { return options_.debug; }
  /// Turns debug mode on or off.
  void set_debug(bool on) noexcept { options_.debug = on; }
  /// The debug mode's slow callback threshold.
  Duration slow_callback_duration() const noexcept { return options_.slow_callback_duration; }
  /// Sets the debug mode's slow callback threshold.
  void set_slow_callback_duration(Duration d) noexcept { options_.slow_callback_duration = d; }
  /// Whether the loop runs on virtual time.
  bool virtual_clock() const noexcept { return options_.virtual_clock; }

  /// Where warnings go (slow callbacks, unawaited tasks, errors nobody
  /// retrieved, exceptions escaping callbacks); default: stderr.
  void set_warning_handler(std::function<void(std::string_view)> handler) {
    warning_handler_ = std::move(handler);
  }
  /// Emits a warning through the handler.
  void warn(std::string_view message) const;

  // ---- building blocks for awaitables (docs/aio-internals.md) ----

  /// Queues a unit of work for this tick or the next (loop thread).
  void schedule(detail::Work* w) noexcept { ready_.push(w); }
  /// Queues a unit of work from any thread.
  void schedule_threadsafe(detail::Work* w) noexcept;
  /// Adds/removes a timer (loop thread). add_timer assigns the FIFO seq.
  void add_timer(detail::TimerNode* t);
  /// Removes timer `t` from the heap (internal).
  void remove_timer(detail::TimerNode* t) noexcept;
  /// Virtual clock: while held, something outside the loop's timers (an fd,
  /// another thread) may wake a task, so time advances only in real time.
  void hold_clock() noexcept { ++clock_holds_; }
  /// Ends a hold taken on the virtual clock (internal).
  void release_clock() noexcept { --clock_holds_; }
  /// The epoll instance (FdWatch registers with it).
  int epoll_fd() const noexcept { return epfd_; }

 private:
  friend class detail::TaskCore;
  friend class Suspension;
  [[noreturn]] static void throw_no_running_loop();
  struct TimerEntry {
    std::int64_t deadline;
    detail::TimerNode* node;
  };
  bool timer_less(const TimerEntry& a, const TimerEntry& b) const noexcept {
    return a.deadline < b.deadline || (a.deadline == b.deadline && a.node->seq < b.node->seq);
  }
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  void run_once();
  void drain_remote() noexcept;
  void run_ready();
  void fire_timers() noexcept;
  std::int64_t real_now() const noexcept;
  void register_task(detail::TaskCore* t) noexcept;

  LoopOptions options_;
  detail::WorkQueue ready_;
  std::atomic<detail::Work*> remote_head_{nullptr};
  std::atomic<bool> remote_notified_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<int> remote_stoppers_{0};  // stop() calls from other threads in progress
  int epfd_ = -1;
  int evfd_ = -1;
  std::vector<TimerEntry> timers_;
  std::int64_t now_ = 0;
  std::int64_t virtual_offset_ = 0;  // virtual time - real time
  std::uint64_t timer_seq_ = 0;
  std::uint64_t next_task_id_ = 1;
  std::size_t pending_tasks_ = 0;
  std::int64_t clock_holds_ = 0;
  detail::List tasks_;
  std::function<void(std::string_view)> warning_handler_;
  EventLoop* previous_ = nullptr;  // loop that was current before run
  bool running_ = false;
  bool closing_ = false;
};

// ---- inline definitions ----

inline bool Suspension::begin(std::coroutine_handle<> h, CancelHook on_cancel) {
  detail::Context& ctx = detail::tls_context;
  if (!ctx.loop) throw Error("aio: awaited outside a running event loop");
  loop_ = ctx.loop;
  task_ = ctx.task;
  if (task_ && task_->must_cancel_) {
    task_->must_cancel_ = false;
    cancelled_ = true;
    return false;
  }
  handle_ = h;
  hook_ = on_cancel;
  state_ = kArmed;
  fn = &run_work;
  if (task_) task_->waiting_on = this;
  return true;
}

inline void Suspension::wake() noexcept {
  if (state_ != kArmed) return;
  state_ = kScheduled;
  if (task_ && task_->waiting_on == this) task_->waiting_on = nullptr;
  loop_->schedule(this);
}

inline void TimerHandle::cancel() noexcept {
  if (!cb_ || cb_->cancelled) return;
  cb_->cancelled = true;
  if (cb_->queued()) {
    cb_->loop->remove_timer(cb_);
    cb_->release();  // the heap's reference
  }
}

}  // namespace celeriac::aio
