// Task<T>: a lazy coroutine (asyncio's coroutine object), and TaskHandle<T>:
// a coroutine running as a task on an event loop (asyncio.Task), awaitable
// and cancellable. spawn(), create_task() and run() as in asyncio.
#pragma once

#include <coroutine>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio {

template <class T = void>
class Task;

namespace detail {

struct PromiseBase {
  std::coroutine_handle<> continuation;  // the awaiting coroutine, if any
  TaskCore* core = nullptr;              // set when this is a task's root
  std::exception_ptr error;
  bool started = false;

  static void* operator new(std::size_t n) { return frame_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_deallocate(p, n); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      PromiseBase& p = h.promise();
      if (p.continuation) return p.continuation;  // symmetric transfer
      if (p.core) p.core->finish(p.error);        // may destroy this frame
      return std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { error = std::current_exception(); }
};

template <class T>
struct Promise : PromiseBase {
  Task<T> get_return_object() noexcept;
  template <class U = T>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
  const T& peek() const {
    if (error) std::rethrow_exception(error);
    return *value;
  }
  std::optional<T> value;
};

template <>
struct Promise<void> : PromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
  void peek() const {
    if (error) std::rethrow_exception(error);
  }
};

void warn_unawaited(std::coroutine_handle<> h) noexcept;

}  // namespace detail

/// A coroutine returning T. Lazy: nothing runs until it is awaited
/// (`co_await task`, which transfers control symmetrically) or spawned as a
/// task. Move-only; destroying an unstarted Task destroys its frame (with a
/// warning in debug mode, asyncio's "coroutine was never awaited").
template <class T>
class [[nodiscard]] Task {
 public:
  /// The coroutine's promise type.
  using promise_type = detail::Promise<T>;
  /// The type co_await gives.
  using value_type = T;
  /// The coroutine handle.
  using Handle = std::coroutine_handle<promise_type>;

  Task() noexcept = default;
  /// Takes ownership of coroutine `h`.
  explicit Task(Handle h) noexcept : h_(h) {}
  /// Takes over `o`'s coroutine.
  Task(Task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  /// Destroys this coroutine (if any), then takes over `o`'s.
  Task& operator=(Task&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Task() { reset(); }

  /// Whether it holds a coroutine.
  bool valid() const noexcept { return static_cast<bool>(h_); }
  /// Gives up ownership of the coroutine frame.
  Handle release() noexcept { return std::exchange(h_, {}); }

  bool await_ready() const {
    if (!h_) throw InvalidStateError("aio::Task: awaiting an empty task");
    if (h_.promise().started) throw InvalidStateError("aio::Task: a coroutine can be awaited once");
    return false;
  }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> parent) noexcept {
    h_.promise().continuation = parent;
    h_.promise().started = true;
    return h_;
  }
  T await_resume() { return h_.promise().take(); }

 private:
  void reset() noexcept {
    if (h_) {
      if (!h_.promise().started) detail::warn_unawaited(h_);
      h_.destroy();
      h_ = {};
    }
  }
  Handle h_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}

/// Awaiting a task: resumes when it finishes; cancelling the awaiting task
/// cancels the awaited one (asyncio), then keeps waiting for it to finish.
template <class T>
class JoinAwaiter : private Suspension, private DoneListener {
 public:
  /// With `propagate_cancel` false (shield), cancelling the awaiting task
  /// only stops the wait.
  explicit JoinAwaiter(TaskCore* core, bool propagate_cancel = true) noexcept
      : core_(core), propagate_(propagate_cancel) {
    core_->add_ref();
  }
  JoinAwaiter(JoinAwaiter&& o) noexcept
      : Suspension(), DoneListener(), core_(o.core_), propagate_(o.propagate_) {
    core_->add_ref();
  }
  ~JoinAwaiter() {
    DoneListener::unlink();
    core_->release();
  }
  bool await_ready() const noexcept { return core_->done(); }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!begin(h, &on_cancel)) return false;
    on_done = &on_task_done;
    core_->add_listener(this);
    return true;
  }
  T await_resume();

 private:
  static void on_task_done(DoneListener* l, TaskCore*) noexcept {
    static_cast<JoinAwaiter*>(l)->wake();
  }
  static bool on_cancel(Suspension& s) noexcept {
    auto& self = static_cast<JoinAwaiter&>(s);
    if (!self.propagate_) {
      self.DoneListener::unlink();
      return true;
    }
    self.core_->cancel();
    return false;
  }
  TaskCore* core_;
  bool propagate_;
};

}  // namespace detail

/// A task on an event loop (asyncio.Task): `co_await handle` for its result,
/// cancel() to cancel it. Copies share the task. Loop thread only.
template <class T = void>
class TaskHandle {
 public:
  /// The task's result type.
  using value_type = T;

  TaskHandle() noexcept = default;
  /// Adopts a reference to `core`.
  explicit TaskHandle(detail::TaskCore* core) noexcept : core_(core) {}
  /// Another handle on the same task.
  TaskHandle(const TaskHandle& o) noexcept : core_(o.core_) {
    if (core_) core_->add_ref();
  }
  /// Takes over `o`'s task.
  TaskHandle(TaskHandle&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  /// Handles `o`'s task instead of this one's.
  TaskHandle& operator=(TaskHandle o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~TaskHandle() {
    if (core_) core_->release();
  }

  /// Whether it refers to a task.
  bool valid() const noexcept { return core_ != nullptr; }
  /// Finished: with a value, an error, or cancelled.
  bool done() const { return checked().done(); }
  /// Whether the task finished by being cancelled.
  bool cancelled() const { return checked().outcome() == detail::TaskCore::kCancelled; }
  /// Requests cancellation: the task's next (or current) suspension point
  /// throws CancelledError. False when the task is already done.
  bool cancel() { return checked().cancel(); }
  /// Pending cancellation requests (asyncio.Task.cancelling()).
  std::uint32_t cancelling() const { return checked().cancelling(); }
  /// asyncio.Task.uncancel().
  std::uint32_t uncancel() { return checked().uncancel(); }
  /// The task's name (asyncio's get_name()).
  std::string name() const { return checked().name(); }

  /// The result; InvalidStateError if not done, CancelledError if
  /// cancelled, or the task's exception rethrown.
  decltype(auto) result() const {
    auto& c = checked();
    if (!c.done())
      throw InvalidStateError("aio::TaskHandle::result(): task '" + c.name() + "' is not done");
    c.mark_retrieved();
    if (c.outcome() == detail::TaskCore::kCancelled)
      throw CancelledError("task '" + c.name() + "' was cancelled");
    if (c.outcome() == detail::TaskCore::kError) std::rethrow_exception(c.error());
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return static_cast<const T&>(promise().peek());
    }
  }
  /// Moves the result out (for move-only T); same errors as result().
  T take_result() {
    auto& c = checked();
    if (!c.done())
      throw InvalidStateError("aio::TaskHandle::take_result(): task '" + c.name() +
                              "' is not done");
    c.mark_retrieved();
    if (c.outcome() == detail::TaskCore::kCancelled)
      throw CancelledError("task '" + c.name() + "' was cancelled");
    return promise().take();
  }
  /// The task's exception (null if it succeeded); InvalidStateError if not
  /// done, CancelledError if cancelled.
  std::exception_ptr exception() const {
    auto& c = checked();
    if (!c.done())
      throw InvalidStateError("aio::TaskHandle::exception(): task '" + c.name() + "' is not done");
    c.mark_retrieved();
    if (c.outcome() == detail::TaskCore::kCancelled)
      throw CancelledError("task '" + c.name() + "' was cancelled");
    return c.outcome() == detail::TaskCore::kError ? c.error() : nullptr;
  }

  /// Calls fn(handle) or fn() through call_soon once the task is done
  /// (asyncio.Task.add_done_callback).
  template <class F>
  void add_done_callback(F fn) const {
    struct Cb final : detail::DoneListener {
      Cb(F f, TaskHandle h) : fn(std::move(f)), handle(std::move(h)) {}
      F fn;
      TaskHandle handle;
    };
    auto* cb = new Cb(std::move(fn), *this);
    cb->on_done = [](detail::DoneListener* l, detail::TaskCore* core) noexcept {
      auto* self = static_cast<Cb*>(l);
      core->loop()->call_soon([f = std::move(self->fn), h = std::move(self->handle)]() mutable {
        if constexpr (std::is_invocable_v<F&, TaskHandle>) {
          f(std::move(h));
        } else {
          (void)h;
          f();
        }
      });
      delete self;
    };
    checked().add_listener(cb);
  }

  /// Waits for the task and gives its result (rethrows its exception).
  auto operator co_await() const noexcept { return detail::JoinAwaiter<T>(core_); }

  /// The underlying bookkeeping (for combinators).
  detail::TaskCore* core() const noexcept { return core_; }
  /// Whether both refer to the same task.
  friend bool operator==(const TaskHandle& a, const TaskHandle& b) noexcept {
    return a.core_ == b.core_;
  }

 private:
  detail::TaskCore& checked() const {
    if (!core_) throw InvalidStateError("aio::TaskHandle: empty handle");
    return *core_;
  }
  detail::Promise<T>& promise() const {
    return std::coroutine_handle<detail::Promise<T>>::from_address(core_->coro().address())
        .promise();
  }
  detail::TaskCore* core_ = nullptr;
};

namespace detail {
template <class T>
T JoinAwaiter<T>::await_resume() {
  end();
  TaskHandle<T> h(core_);
  core_->add_ref();
  if constexpr (std::is_void_v<T>) {
    h.result();
  } else if constexpr (std::is_copy_constructible_v<T>) {
    return h.result();
  } else {
    return h.take_result();
  }
}
}  // namespace detail

template <class T>
TaskHandle<T> EventLoop::spawn(Task<T> task, std::string name) {
  if (!task.valid()) throw InvalidStateError("aio::EventLoop::spawn: empty task");
  auto h = task.release();
  h.promise().started = true;
  auto* core = new detail::TaskCore(this, h, std::move(name));
  h.promise().core = core;
  register_task(core);
  core->add_ref();  // the handle's
  return TaskHandle<T>(core);
}

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  auto h = spawn(std::move(task));
  run_until_done(h.core());
  if constexpr (std::is_void_v<T>) {
    h.result();
  } else {
    return std::move(h).take_result();
  }
}

/// Spawns `task` on the running loop (asyncio.create_task).
template <class T>
TaskHandle<T> spawn(Task<T> task) {
  return EventLoop::current().spawn(std::move(task));  // no name: no string moved
}
/// As spawn(task), with a name for debug messages (asyncio's name=).
template <class T>
TaskHandle<T> spawn(Task<T> task, std::string name) {
  return EventLoop::current().spawn(std::move(task), std::move(name));
}
template <class T>
TaskHandle<T> create_task(Task<T> task, std::string name = {}) {
  return EventLoop::current().spawn(std::move(task), std::move(name));
}

/// asyncio.run: creates a loop, runs `main` to completion, cancels the tasks
/// still running and waits for them, and returns main's result.
template <class T>
T run(Task<T> main, LoopOptions options = {}) {
  EventLoop loop(options);
  auto h = loop.spawn(std::move(main), "main");
  loop.run_until_done(h.core());
  loop.cancel_all_tasks();
  if constexpr (std::is_void_v<T>) {
    h.result();
  } else {
    return h.take_result();
  }
}

}  // namespace celeriac::aio
