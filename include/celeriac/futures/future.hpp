// Future<T>: the eventual result of an asynchronous operation, with Python's
// concurrent.futures.Future contract plus continuations. One future type
// serves the thread pool, the process pool, the event loop (co_await it) and
// the task queue's AsyncResult.
#pragma once

#include <chrono>
#include <concepts>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "celeriac/error.hpp"
#include "celeriac/futures/detail/shared_state.hpp"
#include "celeriac/futures/executor.hpp"

namespace celeriac {

template <class T>
class Future;

namespace futures::detail {

template <class T>
struct IsFuture : std::false_type {};
template <class T>
struct IsFuture<Future<T>> : std::true_type {};

/// Runs `fn(args...)` and stores what it returns (or throws) in `state`.
template <class T, class F, class... Args>
void fulfil(SharedState<T>& state, F&& fn, Args&&... args) noexcept {
  try {
    if constexpr (std::is_void_v<T>) {
      std::invoke(std::forward<F>(fn), std::forward<Args>(args)...);
      state.try_set_value();
    } else {
      state.try_set_value(std::invoke(std::forward<F>(fn), std::forward<Args>(args)...));
    }
  } catch (...) {
    state.try_set_exception(std::current_exception());
  }
}

}  // namespace futures::detail

/// The outcome of an operation that may not have finished yet.
///
/// Copies share one state, as Python futures are shared references. All
/// members are thread-safe. A default-constructed Future is invalid: every
/// member but valid() throws InvalidStateError.
template <class T>
class Future {
 public:
  /// The type of the value the future delivers.
  using value_type = T;

  Future() = default;
  /// Adopts a shared state; executors use this to create their futures.
  explicit Future(futures::detail::StatePtr<T> state) noexcept : state_(std::move(state)) {}

  /// Whether this future refers to a state at all.
  bool valid() const noexcept { return static_cast<bool>(state_); }
  /// Finished (with a value or an error) or cancelled.
  bool done() const { return checked().done(); }
  /// An executor is running the call and it cannot be cancelled any more.
  bool running() const { return checked().status() == futures::detail::kRunning; }
  /// Whether the future was cancelled.
  bool cancelled() const { return checked().status() == futures::detail::kCancelled; }
  /// Cancels the call if it has not started; returns whether the future is
  /// now cancelled. Done-callbacks run at once.
  bool cancel() { return checked().cancel(); }

  /// Blocks until done.
  void wait() const {
    checked().template wait_until<std::chrono::steady_clock, std::chrono::nanoseconds>(nullptr);
  }
  /// Blocks until done or `timeout` elapsed; returns done().
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) const {
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::steady_clock::duration>(timeout));
  }
  /// As wait_for(), with an absolute deadline on any clock.
  template <class Clock, class Duration>
  bool wait_until(std::chrono::time_point<Clock, Duration> deadline) const {
    return checked().wait_until(&deadline);
  }

  /// Waits, then returns the value or rethrows the call's exception;
  /// CancelledError if cancelled.
  decltype(auto) result() const& {
    wait();
    return value_ref();
  }
  /// As above, but moves the value out when this is the last reference.
  T result() && {
    wait();
    return take_value();
  }
  /// As result(), throwing TimeoutError when not done within `timeout`.
  template <class Rep, class Period>
  decltype(auto) result(std::chrono::duration<Rep, Period> timeout) const& {
    if (!wait_for(timeout)) throw TimeoutError("future not done within the timeout");
    return value_ref();
  }
  /// As result(timeout), moving the value out of a temporary future.
  template <class Rep, class Period>
  T result(std::chrono::duration<Rep, Period> timeout) && {
    if (!wait_for(timeout)) throw TimeoutError("future not done within the timeout");
    return take_value();
  }

  /// Waits, then returns the call's exception (null if it succeeded);
  /// CancelledError if cancelled.
  std::exception_ptr exception() const {
    wait();
    return error_or_throw();
  }
  /// As exception(), waiting at most `timeout` (TimeoutError after it).
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    if (!wait_for(timeout)) throw TimeoutError("future not done within the timeout");
    return error_or_throw();
  }

  /// Calls `fn(future)` (or `fn()`) when the future is done: at once on this
  /// thread if it already is, otherwise on the thread that completes it.
  /// Callbacks run in the order added; one that throws is reported on stderr
  /// and the others still run.
  template <class F>
  void add_done_callback(F&& fn) const {
    static_assert(std::is_invocable_v<F&, Future<T>> || std::is_invocable_v<F&>,
                  "a done-callback takes the Future, or nothing");
    if constexpr (std::is_invocable_v<F&, Future<T>>) {
      checked().on_done([self = *this, f = std::forward<F>(fn)]() mutable { f(std::move(self)); });
    } else {
      checked().on_done(std::forward<F>(fn));
    }
  }

  /// Continuation: returns a future of `fn`'s result, run on the completing
  /// thread. `fn` takes either the finished Future<T> (and sees errors and
  /// cancellation itself) or the value (T, or nothing for void): then an
  /// error skips `fn` and passes to the returned future, and cancellation
  /// arrives as CancelledError. A `fn` returning a Future is flattened.
  template <class F>
  auto then(F&& fn) const {
    return then_impl([](auto&& job) { job(); }, std::forward<F>(fn));
  }
  /// As then(fn), run on `executor` instead of the completing thread. If the
  /// executor refuses the work, the returned future fails with its error.
  template <Executor E, class F>
  auto then(E& executor, F&& fn) const {
    return then_impl([&executor](auto&& job) { executor.post(std::forward<decltype(job)>(job)); },
                     std::forward<F>(fn));
  }

  /// The shared state, for executors and bridges in other layers.
  const futures::detail::StatePtr<T>& state() const noexcept { return state_; }

  /// Whether both futures share one state (are copies of each other).
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }

 private:
  futures::detail::SharedState<T>& checked() const {
    if (!state_) throw InvalidStateError("future has no state (default-constructed or moved-from)");
    return *state_;
  }

  std::exception_ptr error_or_throw() const {
    if (state_->status() == futures::detail::kCancelled)
      throw CancelledError("future was cancelled");
    return state_->error();
  }

  void throw_if_failed() const {
    if (auto e = error_or_throw()) std::rethrow_exception(e);
  }

  decltype(auto) value_ref() const {
    throw_if_failed();
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return static_cast<const T&>(state_->value());
    }
  }

  T take_value() {
    throw_if_failed();
    if constexpr (std::is_void_v<T>) {
      return;
    } else if constexpr (std::is_copy_constructible_v<T>) {
      if (!state_->unique()) return state_->value();
      return std::move(state_->value());
    } else {
      return std::move(state_->value());
    }
  }

  // The value handed to a continuation: moved when no one else can see it.
  decltype(auto) continuation_arg() {
    if constexpr (std::is_copy_constructible_v<T>) {
      return take_value();
    } else {
      throw_if_failed();
      return std::move(state_->value());
    }
  }

  template <class F>
  static constexpr bool takes_future = std::is_invocable_v<F&, Future<T>>;

  template <class F>
  static auto continuation_result_type() {
    if constexpr (takes_future<F>) {
      return std::type_identity<std::invoke_result_t<F&, Future<T>>>{};
    } else if constexpr (std::is_void_v<T>) {
      return std::type_identity<std::invoke_result_t<F&>>{};
    } else {
      return std::type_identity<std::invoke_result_t<F&, T>>{};
    }
  }

  template <class Dispatch, class F>
  auto then_impl(Dispatch dispatch, F&& fn) const {
    using Fn = std::decay_t<F>;
    using R = typename decltype(continuation_result_type<Fn>())::type;
    if constexpr (futures::detail::IsFuture<R>::value) {
      using U = typename R::value_type;
      // Flatten: the outer future completes with the inner one.
      auto outer = futures::detail::make_state<U>();
      plain_then<R>(dispatch, std::forward<F>(fn)).add_done_callback([outer](Future<R> f) {
        if (f.state_->has_error()) {
          outer->try_set_exception(f.state_->error());
          return;
        }
        if (f.cancelled()) {
          outer->try_set_exception(std::make_exception_ptr(CancelledError("future was cancelled")));
          return;
        }
        f.state_->value().add_done_callback([outer](Future<U> inner) {
          futures::detail::fulfil(*outer, [&]() -> U { return std::move(inner).result(); });
        });
      });
      return Future<U>(outer);
    } else {
      return plain_then<R>(dispatch, std::forward<F>(fn));
    }
  }

  // then() without flattening: a Future<R> of whatever fn returns.
  template <class R, class Dispatch, class F>
  Future<R> plain_then(Dispatch dispatch, F&& fn) const {
    using Fn = std::decay_t<F>;
    auto next = futures::detail::make_state<R>();
    checked().on_done([self = *this, next, dispatch, f = Fn(std::forward<F>(fn))]() mutable {
      try {
        dispatch([self = std::move(self), next, f = std::move(f)]() mutable {
          run_continuation(std::move(self), *next, f);
        });
      } catch (...) {
        // The executor refused the continuation (e.g. BrokenExecutor after
        // shutdown): fail its future rather than leave it pending forever.
        next->try_set_exception(std::current_exception());
      }
    });
    return Future<R>(next);
  }

  template <class R, class Fn>
  static void run_continuation(Future self, futures::detail::SharedState<R>& next, Fn& fn) {
    if constexpr (takes_future<Fn>) {
      futures::detail::fulfil(next, fn, std::move(self));
    } else if constexpr (std::is_void_v<T>) {
      futures::detail::fulfil(next, [&] {
        self.throw_if_failed();
        return fn();
      });
    } else {
      futures::detail::fulfil(next, [&] { return fn(self.continuation_arg()); });
    }
  }

  template <class U>
  friend class Future;

  futures::detail::StatePtr<T> state_;
};

/// A future that is already finished with `value`.
template <class T>
Future<std::decay_t<T>> make_ready_future(T&& value) {
  auto s = futures::detail::make_state<std::decay_t<T>>();
  s->try_set_value(std::forward<T>(value));
  return Future<std::decay_t<T>>(std::move(s));
}

/// A finished Future<void>.
inline Future<void> make_ready_future() {
  auto s = futures::detail::make_state<void>();
  s->try_set_value();
  return Future<void>(std::move(s));
}

/// A future that is already finished with the exception `e`.
template <class T>
Future<T> make_exceptional_future(std::exception_ptr e) {
  auto s = futures::detail::make_state<T>();
  s->try_set_exception(std::move(e));
  return Future<T>(std::move(s));
}

}  // namespace celeriac
