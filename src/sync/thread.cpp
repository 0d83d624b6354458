#include "celeriac/sync/thread.hpp"

#include <unistd.h>

#include <cstdio>
#include <system_error>

#include "celeriac/error.hpp"
#include "celeriac/sync/thread_name.hpp"

namespace celeriac::sync {

namespace {

// Python's default thread names: Thread-1, Thread-2, ...
std::string default_name() {
  static std::atomic<unsigned long> counter{0};
  return "Thread-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

void report_escaped_exception(const std::string& name, const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Exception in thread %s: %s\n", name.c_str(), e.what());
  } catch (...) {
    std::fprintf(stderr, "Exception in thread %s: unknown exception\n", name.c_str());
  }
}

}  // namespace

Thread::State::State(std::unique_ptr<detail::ThreadTarget> t, std::string n)
    : target(std::move(t)), name(n.empty() ? default_name() : std::move(n)) {}

Thread& Thread::operator=(Thread&& other) noexcept {
  if (this != &other) {
    join_quietly_();
    state_ = std::move(other.state_);
  }
  return *this;
}

Thread::~Thread() {
  join_quietly_();
}

void Thread::start() {
  // A local reference: the target may destroy this Thread before start() returns.
  const std::shared_ptr<State> keep = state_;
  State& s = state();
  if (started()) throw InvalidStateError("Thread::start: thread '" + s.name + "' already started");
  s.thread = std::thread([keep] { run_(*keep); });
  s.id = s.thread.get_id();
  s.launched.set();  // the target may now look at this Thread (e.g. join() itself)
  s.started.wait();
}

void Thread::run_(State& state) noexcept {
  state.launched.wait();
  set_current_thread_name(state.name);
  state.tid.store(static_cast<pid_t>(::gettid()), std::memory_order_relaxed);
  state.started.set();
  try {
    state.target->run();
  } catch (...) {
    state.error = std::current_exception();
    report_escaped_exception(state.name, state.error);
  }
  state.target.reset();  // free what the callable captured in this thread, as Python does
  state.finished.set();
}

void Thread::join() {
  check_joinable_("Thread::join");
  State& s = state();
  if (s.thread.joinable()) s.thread.join();
}

void Thread::check_joinable_(const char* where) const {
  const State& s = state();
  if (!started())
    throw InvalidStateError(std::string(where) + ": thread '" + s.name + "' was never started");
  if (s.id == std::this_thread::get_id())
    throw InvalidStateError(std::string(where) + ": thread '" + s.name + "' cannot join itself");
}

void Thread::join_quietly_() noexcept {
  if (!state_ || !state_->thread.joinable()) return;
  if (state_->thread.get_id() == std::this_thread::get_id()) {
    state_->thread.detach();  // destroyed by its own thread: joining would deadlock
  } else {
    state_->thread.join();
  }
}

bool Thread::started() const {
  return state().started.is_set();
}

bool Thread::is_alive() const {
  return started() && !state().finished.is_set();
}

const std::string& Thread::name() const {
  return state().name;
}

std::thread::id Thread::ident() const {
  return started() ? state().id : std::thread::id();
}

pid_t Thread::native_id() const {
  return state().tid.load(std::memory_order_relaxed);
}

std::exception_ptr Thread::exception() const {
  const State& s = state();
  return s.finished.is_set() ? s.error : nullptr;
}

Thread::State& Thread::state() const {
  if (!state_) throw InvalidStateError("Thread: moved-from Thread has no thread");
  return *state_;
}

}  // namespace celeriac::sync
