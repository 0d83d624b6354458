// Thread: a named thread of execution (Python's threading.Thread).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "celeriac/sync/event.hpp"

namespace celeriac::sync {

namespace detail {

/// The callable a Thread runs, type-erased (move-only callables allowed).
struct ThreadTarget {
  virtual ~ThreadTarget() = default;
  virtual void run() = 0;
};

template <class F>
struct ThreadTargetImpl final : ThreadTarget {
  explicit ThreadTargetImpl(F f) : fn(std::move(f)) {}
  void run() override { fn(); }
  F fn;
};

/// What a Thread can run: a callable taking no argument, stored by decayed copy.
template <class F>
concept ThreadCallable = std::invocable<std::add_lvalue_reference_t<std::decay_t<F>>> &&
    std::constructible_from<std::decay_t<F>, F &&>;

}  // namespace detail

/// A thread that runs one callable under a name visible to the OS (`top -H`,
/// gdb, perf). As Python's threading.Thread, it is created first and begun
/// with start(); as std::jthread, destroying (or assigning to) a started
/// Thread joins it. An exception escaping the callable does not terminate
/// the program: it is printed to stderr as "Exception in thread <name>: ..."
/// (Python's threading.excepthook) and kept for exception().
/// Like std::thread, a Thread object is used by one thread at a time (the
/// thread it starts never touches it). Movable, not copyable; a moved-from
/// Thread throws InvalidStateError from every member but destruction.
class Thread {
 public:
  /// A thread that will run `target()` under `name` once started. An empty
  /// name becomes "Thread-<n>" as in Python. Names longer than
  /// kMaxThreadNameLength bytes are kept whole in name() but truncated for
  /// the OS (see set_current_thread_name()).
  template <detail::ThreadCallable F>
  explicit Thread(F&& target, std::string name = {})
      : state_(std::make_shared<State>(
            std::make_unique<detail::ThreadTargetImpl<std::decay_t<F>>>(std::forward<F>(target)),
            std::move(name))) {}

  /// Takes over `other`'s thread; `other` is left moved-from.
  Thread(Thread&& other) noexcept = default;
  /// Joins the thread this one held (if started), then takes over `other`'s.
  Thread& operator=(Thread&& other) noexcept;
  Thread(const Thread&) = delete;
  Thread& operator=(const Thread&) = delete;
  /// Joins the thread if it was started and not joined yet.
  ~Thread();

  /// Starts the thread and returns once it runs (named, with its ident() and
  /// native_id() known). InvalidStateError if already started.
  void start();

  /// Blocks until the thread ends. InvalidStateError if it was never started
  /// or if a thread tries to join itself. Joining twice is allowed.
  void join();

  /// Waits at most `timeout` for the thread to end; true (and joined) if it
  /// did, false if it still runs (check is_alive(), as in Python).
  template <class Rep, class Period>
  bool join_for(std::chrono::duration<Rep, Period> timeout) {
    check_joinable_("Thread::join_for");
    if (!state().finished.wait_for(timeout)) return false;
    join();
    return true;
  }

  /// As join_for(), with an absolute deadline on any clock.
  template <class Clock, class Duration>
  bool join_until(std::chrono::time_point<Clock, Duration> deadline) {
    check_joinable_("Thread::join_until");
    if (!state().finished.wait_until(deadline)) return false;
    join();
    return true;
  }

  /// Whether the thread was started and its callable has not returned yet.
  bool is_alive() const;

  /// Whether start() was called.
  bool started() const;

  /// The thread's full name (the OS may hold a truncated copy).
  const std::string& name() const;

  /// The thread's id once started (still after it ended, as Python's
  /// ident); std::thread::id() (no thread) before.
  std::thread::id ident() const;

  /// The kernel's id of the thread (the TID `top -H` and gdb show) once
  /// started; 0 before.
  pid_t native_id() const;

  /// The exception that escaped the callable, once the thread has ended;
  /// null if it returned normally or is still running.
  std::exception_ptr exception() const;

 private:
  struct State {
    State(std::unique_ptr<detail::ThreadTarget> t, std::string n);
    std::unique_ptr<detail::ThreadTarget> target;
    std::string name;
    std::thread thread;
    std::thread::id id;  // thread.get_id(), kept after join() as Python keeps ident
    std::atomic<pid_t> tid{0};
    std::exception_ptr error;  // written by the thread before `finished`
    Event launched;            // `thread` is assigned: the new thread may run the target
    Event started;             // named, tid known
    Event finished;            // target returned or threw
  };

  static void run_(State& state) noexcept;
  State& state() const;
  void check_joinable_(const char* where) const;
  void join_quietly_() noexcept;

  // Shared with the running thread, so a Thread destroyed by its own
  // callable (then detached) leaves the state alive until the thread ends.
  std::shared_ptr<State> state_;
};

}  // namespace celeriac::sync
