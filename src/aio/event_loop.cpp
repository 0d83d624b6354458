// The event loop's engine: epoll + eventfd + timer heap + run queues.
#include "celeriac/aio/event_loop.hpp"

#include <cxxabi.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

#include "celeriac/aio/fd_watch.hpp"
#include "celeriac/aio/task.hpp"

namespace celeriac::aio {

namespace {

std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

bool is_cancelled_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

void warn_somewhere(EventLoop* loop, const std::string& msg) {
  if (loop) {
    loop->warn(msg);
  } else {
    std::fprintf(stderr, "celeriac.aio: %s\n", msg.c_str());
  }
}

}  // namespace

// ---------------------------------------------------------------- detail

namespace detail {

std::string demangled(const char* type_name) {
  int status = 0;
  char* name = abi::__cxa_demangle(type_name, nullptr, nullptr, &status);
  if (status != 0 || name == nullptr) return type_name;
  std::string out(name);
  std::free(name);
  return out;
}

void report_callback_exception(std::exception_ptr e, const char* type_name) noexcept {
  try {
    warn_somewhere(tls_context.loop,
                   "exception in callback " + demangled(type_name) + ": " + describe_exception(e));
  } catch (...) {
  }
}

void warn_unawaited(std::coroutine_handle<> h) noexcept {
  EventLoop* loop = tls_context.loop;
  if (!loop || !loop->debug()) return;
  try {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "coroutine (aio::Task, frame %p) was destroyed without being awaited or spawned",
                  h.address());
    loop->warn(buf);
  } catch (...) {
  }
}

void TimerCallbackBase::fire_fn(TimerNode* t) noexcept {
  auto* cb = static_cast<TimerCallbackBase*>(t);
  cb->loop->schedule(cb);  // the heap's reference moves to the run queue
}

void TimerCallbackBase::work_fn(Work* w, WorkOp op, std::string* out) noexcept {
  auto* cb = static_cast<TimerCallbackBase*>(w);
  switch (op) {
    case WorkOp::kRun:
      if (!cb->cancelled) {
        cb->cancelled = true;  // ran: a later cancel() is a no-op
        try {
          cb->invoke();
        } catch (...) {
          report_callback_exception(std::current_exception(), cb->type_name());
        }
      }
      cb->release();
      break;
    case WorkOp::kDrop:
      cb->release();
      break;
    case WorkOp::kDescribe:
      *out = "timer callback " + demangled(cb->type_name());
      break;
  }
}

TaskCore::TaskCore(EventLoop* loop, std::coroutine_handle<> coro, std::string&& name)
    : loop_(loop), coro_(coro) {
  if (!name.empty()) name_ = new std::string(std::move(name));
  Work::fn = &run_work;
}

std::string TaskCore::name() const {
  if (name_) return *name_;
  return "Task-" + std::to_string(id_);
}

void TaskCore::run_work(Work* w, WorkOp op, std::string* out) noexcept {
  auto* t = static_cast<TaskCore*>(w);
  switch (op) {
    case WorkOp::kRun:
      if (t->state_ != kScheduled) return;
      if (t->must_cancel_) {
        // Cancelled before it started: the coroutine never runs.
        t->must_cancel_ = false;
        t->finish(std::make_exception_ptr(CancelledError()));
        return;
      }
      t->state_ = kStarted;
      tls_context.task = t;
      t->coro_.resume();
      tls_context.task = nullptr;
      break;
    case WorkOp::kDrop:
      break;
    case WorkOp::kDescribe:
      try {
        *out = "task '" + t->name() + "' (first step)";
      } catch (...) {
      }
      break;
  }
}

bool TaskCore::cancel() noexcept {
  if (state_ == kDone) return false;
  ++cancel_requests_;
  if (Suspension* s = waiting_on) {
    must_cancel_ = false;
    s->request_cancel();
  } else {
    must_cancel_ = true;
  }
  return true;
}

void TaskCore::add_listener(DoneListener* l) noexcept {
  if (state_ == kDone) {
    l->on_done(l, this);
    return;
  }
  listeners_.push_back(l);
}

void TaskCore::finish(std::exception_ptr error) noexcept {
  state_ = kDone;
  waiting_on = nullptr;
  if (error) {
    outcome_ = is_cancelled_error(error) ? kCancelled : kError;
    error_ = std::move(error);
  } else {
    outcome_ = kValue;
  }
  if (loop_) --loop_->pending_tasks_;
  while (ListNode* n = listeners_.pop_front()) {
    auto* l = static_cast<DoneListener*>(n);
    l->on_done(l, this);
  }
  release();  // the loop's reference
}

void TaskCore::abandon() noexcept {
  if (state_ == kDone) return;
  if (loop_ && loop_->debug()) {
    try {
      loop_->warn("Task was destroyed but it is pending: '" + name() + "'");
    } catch (...) {
    }
  }
  auto c = std::exchange(coro_, {});
  waiting_on = nullptr;
  // Destroying the frame runs the destructors of its awaiters, which leave
  // the loop's structures.
  c.destroy();
  finish(std::make_exception_ptr(CancelledError("event loop closed before the task finished")));
}

void TaskCore::destroy() noexcept {
  if (outcome_ == kError && !retrieved_) {
    try {
      warn_somewhere(loop_, "Task exception was never retrieved: task '" + name() +
                                "': " + describe_exception(error_));
    } catch (...) {
    }
  }
  ListNode::unlink();
  if (coro_) coro_.destroy();
  delete name_;
  delete this;
}

}  // namespace detail

// ---------------------------------------------------------------- Suspension

void Suspension::run_work(Work* w, detail::WorkOp op, std::string* out) noexcept {
  auto* s = static_cast<Suspension*>(w);
  switch (op) {
    case detail::WorkOp::kRun: {
      s->state_ = kIdle;
      detail::TaskCore* t = s->task_;
      auto h = s->handle_;
      detail::tls_context.task = t;
      h.resume();  // may destroy *s
      detail::tls_context.task = nullptr;
      break;
    }
    case detail::WorkOp::kDrop:
      s->state_ = kIdle;
      break;
    case detail::WorkOp::kDescribe:
      try {
        *out = s->task_ ? "task '" + s->task_->name() + "'" : std::string("coroutine resumption");
      } catch (...) {
      }
      break;
  }
}

void Suspension::request_cancel() noexcept {
  if (state_ != kArmed) return;
  if (!hook_ || hook_(*this)) {
    cancelled_ = true;
    wake();
  }
}

// ---------------------------------------------------------------- EventLoop

EventLoop::EventLoop(LoopOptions options) : options_(options) {
  if (const char* env = std::getenv("CELERIAC_AIO_DEBUG");
      env && *env && std::strcmp(env, "0") != 0)
    options_.debug = true;
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0)
    throw std::system_error(errno, std::generic_category(), "aio::EventLoop: epoll_create1");
  evfd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (evfd_ < 0) {
    int e = errno;
    ::close(epfd_);
    throw std::system_error(e, std::generic_category(), "aio::EventLoop: eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // marks the eventfd
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev) < 0) {
    int e = errno;
    ::close(evfd_);
    ::close(epfd_);
    throw std::system_error(e, std::generic_category(), "aio::EventLoop: epoll_ctl(eventfd)");
  }
  now_ = real_now();
  timers_.reserve(64);
}

EventLoop::~EventLoop() {
  closing_ = true;
  detail::Context saved = detail::tls_context;
  detail::tls_context.loop = this;
  detail::tls_context.task = nullptr;
  auto drop_all = [this] {
    for (;;) {
      drain_remote();
      if (ready_.empty()) break;
      while (detail::Work* w = ready_.pop()) w->fn(w, detail::WorkOp::kDrop, nullptr);
    }
  };
  drop_all();
  for (int round = 0; round < 4 && pending_tasks_ > 0; ++round) {
    std::vector<detail::TaskCore*> pending;
    tasks_.for_each([&](detail::ListNode* n) {
      auto* t = static_cast<detail::TaskCore*>(n);
      if (!t->done()) {
        t->add_ref();
        pending.push_back(t);
      }
    });
    for (auto* t : pending) {
      // Finishing a task wakes the tasks awaiting it: drop those wake-ups
      // now, while their frames still exist (the next abandon frees them).
      t->abandon();
      drop_all();
    }
    for (auto* t : pending) t->release();
    drop_all();
  }
  for (auto& e : timers_) {
    e.node->index = detail::TimerNode::kNotQueued;
    if (e.node->fire == &detail::TimerCallbackBase::fire_fn)
      static_cast<detail::TimerCallbackBase*>(e.node)->release();
  }
  timers_.clear();
  while (detail::ListNode* n = tasks_.pop_front())
    static_cast<detail::TaskCore*>(n)->loop_ = nullptr;
  while (remote_stoppers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  ::close(evfd_);
  ::close(epfd_);
  detail::tls_context = saved;
}

void EventLoop::throw_no_running_loop() {
  throw Error("aio: no running event loop on this thread");
}

std::int64_t EventLoop::real_now() const noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

void EventLoop::warn(std::string_view message) const {
  if (warning_handler_) {
    warning_handler_(message);
  } else {
    std::fprintf(stderr, "celeriac.aio: %.*s\n", static_cast<int>(message.size()), message.data());
  }
}

void EventLoop::stop() noexcept {
  if (in_loop_thread()) {
    stop_requested_.store(true, std::memory_order_relaxed);
    return;
  }
  // The loop may return from run_forever() as soon as it sees the flag and
  // then be destroyed: the destructor waits for this count to fall to zero
  // before it closes the eventfd we are about to write to.
  remote_stoppers_.fetch_add(1, std::memory_order_seq_cst);
  stop_requested_.store(true, std::memory_order_seq_cst);
  std::uint64_t one = 1;
  [[maybe_unused]] auto r = ::write(evfd_, &one, sizeof one);
  remote_stoppers_.fetch_sub(1, std::memory_order_release);
}

void EventLoop::schedule_threadsafe(detail::Work* w) noexcept {
  if (in_loop_thread()) {
    schedule(w);
    return;
  }
  detail::Work* head = remote_head_.load(std::memory_order_relaxed);
  do {
    w->next = head;
  } while (!remote_head_.compare_exchange_weak(head, w, std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
  if (head == nullptr && !remote_notified_.exchange(true, std::memory_order_seq_cst)) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(evfd_, &one, sizeof one);
  }
}

void EventLoop::drain_remote() noexcept {
  if (remote_head_.load(std::memory_order_relaxed) == nullptr) return;
  detail::Work* head = remote_head_.exchange(nullptr, std::memory_order_seq_cst);
  detail::Work* fifo = nullptr;
  while (head) {
    detail::Work* next = head->next;
    head->next = fifo;
    fifo = head;
    head = next;
  }
  while (fifo) {
    detail::Work* next = fifo->next;
    ready_.push(fifo);
    fifo = next;
  }
}

void EventLoop::add_timer(detail::TimerNode* t) {
  t->seq = timer_seq_++;
  timers_.push_back({t->deadline, t});
  t->index = static_cast<std::uint32_t>(timers_.size() - 1);
  sift_up(timers_.size() - 1);
}

void EventLoop::remove_timer(detail::TimerNode* t) noexcept {
  if (!t->queued()) return;
  std::size_t i = t->index;
  t->index = detail::TimerNode::kNotQueued;
  std::size_t last = timers_.size() - 1;
  if (i != last) {
    timers_[i] = timers_[last];
    timers_[i].node->index = static_cast<std::uint32_t>(i);
    timers_.pop_back();
    if (i > 0 && timer_less(timers_[i], timers_[(i - 1) / 2])) {
      sift_up(i);
    } else {
      sift_down(i);
    }
  } else {
    timers_.pop_back();
  }
}

void EventLoop::sift_up(std::size_t i) noexcept {
  TimerEntry e = timers_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (!timer_less(e, timers_[parent])) break;
    timers_[i] = timers_[parent];
    timers_[i].node->index = static_cast<std::uint32_t>(i);
    i = parent;
  }
  timers_[i] = e;
  e.node->index = static_cast<std::uint32_t>(i);
}

void EventLoop::sift_down(std::size_t i) noexcept {
  std::size_t n = timers_.size();
  TimerEntry e = timers_[i];
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && timer_less(timers_[c + 1], timers_[c])) ++c;
    if (!timer_less(timers_[c], e)) break;
    timers_[i] = timers_[c];
    timers_[i].node->index = static_cast<std::uint32_t>(i);
    i = c;
  }
  timers_[i] = e;
  e.node->index = static_cast<std::uint32_t>(i);
}

void EventLoop::fire_timers() noexcept {
  while (!timers_.empty() && timers_[0].deadline <= now_) {
    detail::TimerNode* t = timers_[0].node;
    remove_timer(t);
    t->fire(t);
  }
}

void EventLoop::register_task(detail::TaskCore* t) noexcept {
  t->id_ = next_task_id_++;
  tasks_.push_back(t);
  ++pending_tasks_;
  schedule(t);
}

void EventLoop::run_ready() {
  // Runs what is ready, including work that becomes ready meanwhile, up to a
  // budget; then the loop polls I/O again.
  int budget = 4096;
  if (!options_.debug) {
    while (budget-- > 0) {
      detail::Work* w = ready_.pop();
      if (!w) return;
      w->fn(w, detail::WorkOp::kRun, nullptr);
    }
    return;
  }
  std::string desc;
  while (budget-- > 0) {
    detail::Work* w = ready_.pop();
    if (!w) return;
    desc.clear();
    w->fn(w, detail::WorkOp::kDescribe, &desc);
    auto t0 = Clock::now();
    w->fn(w, detail::WorkOp::kRun, nullptr);
    auto dt = Clock::now() - t0;
    if (dt > options_.slow_callback_duration) {
      char buf[64];
      std::snprintf(buf, sizeof buf, " took %.3f seconds",
                    std::chrono::duration<double>(dt).count());
      warn("Executing " + desc + buf);
    }
  }
}

void EventLoop::run_once() {
  int timeout_ms = -1;
  bool jump = false;
  std::int64_t delta = 0;
  if (!ready_.empty() || remote_head_.load(std::memory_order_relaxed) != nullptr ||
      stop_requested_.load(std::memory_order_relaxed)) {
    timeout_ms = 0;
  } else if (!timers_.empty()) {
    delta = timers_[0].deadline - now_;
    if (delta <= 0) {
      timeout_ms = 0;
    } else if (options_.virtual_clock && clock_holds_ <= 0) {
      timeout_ms = 0;
      jump = true;
    } else {
      timeout_ms = static_cast<int>(std::min<std::int64_t>((delta + 999'999) / 1'000'000, 1 << 30));
    }
  }
  epoll_event events[256];
  std::int64_t before = options_.virtual_clock ? real_now() : 0;
  int n = ::epoll_wait(epfd_, events, 256, timeout_ms);
  if (n < 0) n = 0;  // EINTR
  if (options_.virtual_clock) {
    if (jump && n == 0) {
      now_ += delta;
    } else if (timeout_ms != 0) {
      now_ += real_now() - before;  // waited for real: time passed
    }
  } else {
    now_ = real_now();
  }
  for (int i = 0; i < n; ++i) {
    void* p = events[i].data.ptr;
    if (p == nullptr) {
      std::uint64_t v;
      [[maybe_unused]] auto r = ::read(evfd_, &v, sizeof v);
      remote_notified_.store(false, std::memory_order_seq_cst);
    } else {
      static_cast<detail::FdState*>(p)->on_events(events[i].events);
    }
  }
  drain_remote();
  fire_timers();
  run_ready();
}

namespace {
struct RunScope {
  EventLoop* loop;
  detail::Context saved;
  bool& running;
  RunScope(EventLoop* l, bool& r) : loop(l), saved(detail::tls_context), running(r) {
    if (running) throw Error("aio::EventLoop: the loop is already running");
    if (saved.loop && saved.loop != l)
      throw Error("aio::EventLoop: another event loop is running on this thread");
    running = true;
    detail::tls_context.loop = l;
    detail::tls_context.task = nullptr;
  }
  ~RunScope() {
    running = false;
    detail::tls_context = saved;
  }
};
}  // namespace

void EventLoop::run_forever() {
  RunScope scope(this, running_);
  for (;;) {
    run_once();
    if (stop_requested_.exchange(false, std::memory_order_seq_cst)) break;
  }
}

void EventLoop::run_until_done(detail::TaskCore* task) {
  RunScope scope(this, running_);
  while (!task->done()) {
    run_once();
    if (stop_requested_.exchange(false, std::memory_order_seq_cst)) {
      if (!task->done()) throw Error("aio::EventLoop: stopped before the task completed");
    }
  }
}

void EventLoop::cancel_all_tasks() {
  std::vector<detail::TaskCore*> pending;
  tasks_.for_each([&](detail::ListNode* n) {
    auto* t = static_cast<detail::TaskCore*>(n);
    if (!t->done()) {
      t->add_ref();
      pending.push_back(t);
    }
  });
  for (auto* t : pending) t->cancel();
  {
    RunScope scope(this, running_);
    for (auto* t : pending) {
      while (!t->done()) run_once();
    }
  }
  for (auto* t : pending) {
    if (t->outcome() == detail::TaskCore::kError && !t->retrieved_) {
      t->retrieved_ = true;
      warn("unhandled exception during shutdown: task '" + t->name() +
           "': " + describe_exception(t->error()));
    }
    t->release();
  }
}

// ---------------------------------------------------------------- FdWatch

namespace detail {

void FdState::on_events(std::uint32_t ev) noexcept {
  constexpr std::uint32_t kRead = EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI;
  constexpr std::uint32_t kWrite = EPOLLOUT | EPOLLHUP | EPOLLERR;
  if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) hup_seen = true;
  if (ev & kRead) {
    if (reader) {
      auto* a = static_cast<ReadinessAwaiter*>(reader);
      a->disarm();
      a->wake();
    } else {
      edges |= kReadEdge;
    }
  }
  if (ev & kWrite) {
    if (writer) {
      auto* a = static_cast<ReadinessAwaiter*>(writer);
      a->disarm();
      a->wake();
    } else {
      edges |= kWriteEdge;
    }
  }
}

}  // namespace detail

bool ReadinessAwaiter::await_ready() noexcept {
  std::uint32_t bit = write_ ? detail::FdState::kWriteEdge : detail::FdState::kReadEdge;
  if (st_->edges & bit) {
    st_->edges &= ~bit;
    return true;
  }
  return false;
}

bool ReadinessAwaiter::await_suspend(std::coroutine_handle<> h) {
  if (slot() != nullptr)
    throw InvalidStateError("aio::FdWatch: another task is already waiting for fd " +
                            std::to_string(st_->fd) + " to become " +
                            (write_ ? "writable" : "readable"));
  if (!begin(h, &on_cancel)) return false;
  slot() = this;
  if (!st_->daemon) {
    loop().hold_clock();
    holds_clock_ = true;
  }
  return true;
}

void ReadinessAwaiter::await_resume() {
  end();
  if (closed_)
    throw std::system_error(EBADF, std::generic_category(),
                            "aio::FdWatch closed while a task waited on it");
}

bool ReadinessAwaiter::on_cancel(Suspension& s) noexcept {
  static_cast<ReadinessAwaiter&>(s).disarm();
  return true;
}

void ReadinessAwaiter::disarm() noexcept {
  if (st_ && slot() == this) slot() = nullptr;
  if (holds_clock_) {
    loop().release_clock();
    holds_clock_ = false;
  }
}

FdWatch::FdWatch(EventLoop& loop, int fd) : st_(std::make_unique<detail::FdState>()) {
  st_->loop = &loop;
  st_->fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = st_.get();
  if (::epoll_ctl(loop.epoll_fd(), EPOLL_CTL_ADD, fd, &ev) < 0)
    throw std::system_error(errno, std::generic_category(),
                            "aio::FdWatch: epoll_ctl(ADD) of fd " + std::to_string(fd));
}

void FdWatch::close() noexcept {
  if (!st_) return;
  ::epoll_ctl(st_->loop->epoll_fd(), EPOLL_CTL_DEL, st_->fd, nullptr);
  for (Suspension* s : {st_->reader, st_->writer}) {
    if (!s) continue;
    auto* a = static_cast<ReadinessAwaiter*>(s);
    a->disarm();
    a->closed_ = true;
    a->st_ = nullptr;
    a->wake();
  }
  st_.reset();
}

detail::FdState* FdWatch::checked() const {
  if (!st_)
    throw InvalidStateError(
        "aio::FdWatch: not registered (default-constructed, moved-from or closed)");
  return st_.get();
}

}  // namespace celeriac::aio
