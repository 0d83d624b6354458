#include "celeriac/mp/process_pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "celeriac/mp/fork_server.hpp"
#include "sys.hpp"

namespace celeriac::mp {

std::string detail::PoolTask::name() const {
  return "task #" + std::to_string(seq) + " (" + (call.describe ? call.describe(call.fn) : "?") +
         ")";
}

namespace {

using detail::Clock;
using TaskPtr = std::unique_ptr<detail::PoolTask>;

// A process's peak resident set (VmHWM in /proc/PID/status, KiB; what
// Celery's billiard reads as ru_maxrss), or 0 when it cannot be read.
std::size_t peak_rss_kib(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (!f) return 0;
  char line[256];
  std::size_t kib = 0;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) {
      kib = std::strtoull(line + 6, nullptr, 10);
      break;
    }
  std::fclose(f);
  return kib;
}

struct Worker {
  pid_t pid = -1;
  int pidfd = -1;
  detail::Channel ch;
  std::deque<TaskPtr> inflight;    // in the order sent; front() is running
  Clock::time_point head_since{};  // when front() started
  std::size_t assigned = 0;
  bool init_pending = false;
  bool last_assigned = false;       // max_tasks_per_child reached
  bool want_out = false;            // EPOLLOUT registered
  bool gone = false;                // to be removed by the I/O thread
  bool expected_exit = false;       // retired, not crashed
  TaskPtr victim;                   // the task it was running when it died
  std::exception_ptr victim_error;  // set when the victim already has its error
  ~Worker() {
    if (pidfd >= 0) ::close(pidfd);
  }
};

}  // namespace

struct ProcessPool::Impl {
  ProcessPoolOptions opt;
  std::size_t nworkers = 1;
  mutable std::mutex mu;
  std::deque<TaskPtr> pending;
  std::vector<std::unique_ptr<Worker>> workers;
  bool shut = false;
  bool broken = false;
  bool started = false;  // workers start on the first submit
  std::string broken_msg;
  std::uint64_t seq = 0;
  // Moving average of how long a task occupies a worker (auto prefetch);
  // tasks count as long until the pool has seen otherwise.
  Clock::duration avg_service = std::chrono::microseconds(100);
  int epfd = -1;
  int evfd = -1;
  std::thread io;

  explicit Impl(ProcessPoolOptions o) : opt(std::move(o)) {
    nworkers =
        opt.max_workers ? opt.max_workers : std::max(1u, std::thread::hardware_concurrency());
    init();  // the fork server, before this pool starts its thread
    epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) detail::throw_errno("epoll_create1");
    evfd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (evfd < 0) {
      ::close(epfd);
      detail::throw_errno("eventfd");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    ::epoll_ctl(epfd, EPOLL_CTL_ADD, evfd, &ev);
    io = std::thread([this] { run(); });
  }

  ~Impl() {
    if (epfd >= 0) ::close(epfd);
    if (evfd >= 0) ::close(evfd);
  }

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(evfd, &one, sizeof one);
  }

  void spawn_locked() {
    int sv[2];
    detail::make_socketpair(sv);
    auto w = std::make_unique<Worker>();
    w->ch = detail::Channel(sv[0]);
    detail::SpawnedChild c;
    try {
      c = detail::spawn_child(sv[1]);
    } catch (...) {
      ::close(sv[1]);
      throw;
    }
    ::close(sv[1]);
    w->pid = c.pid;
    w->pidfd = c.pidfd;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = w.get();
    if (::epoll_ctl(epfd, EPOLL_CTL_ADD, w->ch.fd(), &ev) != 0) detail::throw_errno("epoll_ctl");
    if (opt.initializer) {
      const auto& call = opt.initializer.get();
      std::vector<int> fds;
      for (int f : call.fds) fds.push_back(::fcntl(f, F_DUPFD_CLOEXEC, 0));
      std::uint64_t head[2] = {reinterpret_cast<std::uintptr_t>(call.invoke), call.fn};
      w->ch.enqueue(detail::kInit, 0, std::string_view(reinterpret_cast<char*>(head), sizeof head),
                    call.packed_args(), &fds);
      w->init_pending = true;
      flush_locked(*w);
    }
    workers.push_back(std::move(w));
  }

  // Workers start with the first task, as Python's (3.9+): until then the
  // pool cannot be broken, so the first submit always returns a future, and
  // a failing initializer surfaces there deterministically. A pool never
  // used forks nothing.
  void start_workers_locked() {
    if (started) return;
    started = true;
    try {
      while (workers.size() < nworkers) spawn_locked();
    } catch (...) {
      if (!workers.empty()) return;  // run with fewer; the I/O thread retries
      started = false;
      throw;
    }
  }

  void flush_locked(Worker& w) {
    bool done;
    try {
      done = w.ch.flush();
    } catch (const std::exception&) {
      return;  // the worker is gone; the I/O thread sees the hang-up
    }
    if (done == !w.want_out) return;
    w.want_out = !done;
    epoll_event ev{};
    ev.events = EPOLLIN | (w.want_out ? EPOLLOUT : 0u);
    ev.data.ptr = &w;
    ::epoll_ctl(epfd, EPOLL_CTL_MOD, w.ch.fd(), &ev);
  }

  std::size_t prefetch_locked() const {
    if (opt.prefetch) return opt.prefetch;
    return avg_service < std::chrono::microseconds(100) ? 16 : 2;
  }

  void record_service_locked(Clock::duration took) { avg_service += (took - avg_service) / 8; }

  // In auto mode, a worker whose current task has already run this long is
  // busy with a long one: queue nothing more behind it.
  bool stuck_locked(const Worker& w, Clock::time_point now) const {
    return !opt.prefetch && !w.inflight.empty() &&
           now - w.head_since > std::chrono::milliseconds(1);
  }

  Worker* pick_locked() {
    Worker* best = nullptr;
    const std::size_t prefetch = prefetch_locked();
    const auto now = Clock::now();
    for (auto& w : workers) {
      if (w->gone || w->last_assigned || w->inflight.size() >= prefetch || stuck_locked(*w, now))
        continue;
      if (!best || w->inflight.size() < best->inflight.size()) best = w.get();
      if (best->inflight.empty()) break;
    }
    return best;
  }

  std::optional<Clock::duration> timeout_of(const detail::PoolTask& t) const {
    return t.timeout ? t.timeout : opt.task_timeout;
  }

  // Sends queued tasks to workers with room; returns whether a task with a
  // time limit started running (the I/O thread must recompute its wake-up).
  bool dispatch_locked() {
    bool timed = false;
    while (!pending.empty()) {
      Worker* w = pick_locked();
      if (!w) break;
      TaskPtr t = std::move(pending.front());
      pending.pop_front();
      if (!t->started) {
        bool run;
        try {
          run = t->set_running();
        } catch (...) {
          run = false;
        }
        if (!run) continue;  // cancelled while queued
        t->started = true;
      }
      std::vector<int> fds;
      for (int f : t->call.fds) fds.push_back(::fcntl(f, F_DUPFD_CLOEXEC, 0));
      std::uint64_t head[2] = {reinterpret_cast<std::uintptr_t>(t->call.invoke), t->call.fn};
      w->ch.enqueue(detail::kTask, t->seq,
                    std::string_view(reinterpret_cast<char*>(head), sizeof head),
                    t->call.packed_args(), &fds);
      if (w->inflight.empty()) {
        w->head_since = Clock::now();
        if (timeout_of(*t)) timed = true;
      }
      w->inflight.push_back(std::move(t));
      if (opt.max_tasks_per_child && ++w->assigned >= opt.max_tasks_per_child)
        w->last_assigned = true;
      flush_locked(*w);
    }
    return timed;
  }

  void submit(TaskPtr t) {
    bool timed;
    {
      std::lock_guard lock(mu);
      if (broken) throw BrokenExecutor(broken_msg);
      if (shut) throw BrokenExecutor("celeriac::mp::ProcessPool: cannot submit after shutdown");
      start_workers_locked();
      t->seq = ++seq;
      pending.push_back(std::move(t));
      timed = dispatch_locked();
    }
    if (timed) wake();
  }

  void break_pool_locked(std::string msg,
                         std::vector<std::pair<TaskPtr, std::exception_ptr>>& fails) {
    if (broken) return;
    broken = true;
    broken_msg = std::move(msg);
    auto e = std::make_exception_ptr(BrokenExecutor(broken_msg));
    for (auto& t : pending) fails.emplace_back(std::move(t), e);
    pending.clear();
    for (auto& w : workers) {
      for (auto& t : w->inflight) fails.emplace_back(std::move(t), e);
      w->inflight.clear();
      if (!w->gone) {
        // Their tasks failed with the pool: nothing left to wait for.
        detail::sys_pidfd_send_signal(w->pidfd, SIGKILL);
        w->gone = true;
        w->expected_exit = true;
      }
    }
  }

  // One frame from a worker.
  void on_frame(Worker& w, detail::Frame& f, std::vector<std::pair<TaskPtr, detail::Frame>>& done,
                std::vector<std::pair<TaskPtr, std::exception_ptr>>& fails) {
    if (f.id == 0) {
      w.init_pending = false;
      if (f.kind == detail::kError) {
        std::string what = "?";
        try {
          std::rethrow_exception(detail::decode_error_payload(f.body()));
        } catch (const std::bad_alloc&) {
          what = "std::bad_alloc";
        } catch (const std::exception& e) {
          what = e.what();
        }
        break_pool_locked("celeriac::mp::ProcessPool: the initializer failed in worker pid " +
                              std::to_string(w.pid) + ": " + what,
                          fails);
      }
      return;
    }
    if (w.inflight.empty() || w.inflight.front()->seq != f.id) {
      w.gone = true;  // protocol error: treat as a crash
      return;
    }
    TaskPtr t = std::move(w.inflight.front());
    w.inflight.pop_front();
    if (opt.max_memory_per_child && peak_rss_kib(w.pid) > opt.max_memory_per_child)
      w.last_assigned = true;  // retired once idle, as max_tasks_per_child
    auto now = Clock::now();
    record_service_locked(now - w.head_since);
    w.head_since = now;
    done.emplace_back(std::move(t), std::move(f));
  }

  void check_timeouts_locked(Clock::time_point now,
                             std::vector<std::pair<TaskPtr, std::exception_ptr>>& fails) {
    for (auto& w : workers) {
      if (w->gone || w->inflight.empty()) continue;
      auto limit = timeout_of(*w->inflight.front());
      if (!limit || now - w->head_since < *limit) continue;
      detail::sys_pidfd_send_signal(w->pidfd, SIGKILL);
      TaskPtr t = std::move(w->inflight.front());
      w->inflight.pop_front();
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*limit).count();
      std::string msg = "celeriac::mp::ProcessPool: " + t->name() + " exceeded its time limit of " +
                        std::to_string(ms) + " ms; worker pid " + std::to_string(w->pid) +
                        " was killed and replaced";
      fails.emplace_back(std::move(t), std::make_exception_ptr(TimeoutError(msg)));
      w->gone = true;
      w->expected_exit = true;
    }
  }

  int next_timeout_ms_locked(Clock::time_point now) const {
    std::optional<Clock::time_point> first;
    for (auto& w : workers) {
      if (w->gone || w->inflight.empty()) continue;
      auto limit = timeout_of(*w->inflight.front());
      if (!limit) continue;
      auto at = w->head_since + *limit;
      if (!first || at < *first) first = at;
    }
    if (!first) return -1;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(*first - now).count();
    return static_cast<int>(std::clamp<long long>(ms, 0, 1 << 30));
  }

  // Waits for a worker whose channel is closed to end, and collects its status.
  int reap(Worker& w) {
    w.ch.close();
    if (!detail::wait_pidfd(w.pidfd, 5000)) {
      detail::sys_pidfd_send_signal(w.pidfd, SIGKILL);
      detail::wait_pidfd(w.pidfd, -1);
    }
    try {
      return detail::reap_child(w.pid);
    } catch (...) {
      return 0;
    }
  }

  bool finished_locked() const {
    if (!shut || !pending.empty()) return false;
    for (auto& w : workers)
      if (!w->inflight.empty()) return false;
    return true;
  }

  void run() {
    std::vector<epoll_event> events(64);
    for (;;) {
      int timeout;
      {
        std::lock_guard lock(mu);
        if (finished_locked() || (broken && pending.empty())) break;
        timeout = next_timeout_ms_locked(Clock::now());
      }
      int n = ::epoll_wait(epfd, events.data(), static_cast<int>(events.size()), timeout);
      if (n < 0 && errno != EINTR) break;
      std::vector<std::pair<TaskPtr, detail::Frame>> done;
      std::vector<std::pair<TaskPtr, std::exception_ptr>> fails;
      std::vector<std::unique_ptr<Worker>> dead;
      {
        std::unique_lock lock(mu);
        for (int i = 0; i < n; ++i) {
          auto* w = static_cast<Worker*>(events[i].data.ptr);
          if (!w) {
            std::uint64_t v;
            [[maybe_unused]] auto r = ::read(evfd, &v, sizeof v);
            continue;
          }
          if (w->gone) continue;
          if (events[i].events & EPOLLOUT) flush_locked(*w);
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            bool open;
            try {
              open = w->ch.fill();
            } catch (...) {
              open = false;
            }
            detail::Frame f;
            while (!w->gone && w->ch.next(f)) on_frame(*w, f, done, fails);
            if (!open) w->gone = true;
          }
        }
        check_timeouts_locked(Clock::now(), fails);
        // Retire workers that reached max_tasks_per_child once they are idle.
        for (auto& w : workers)
          if (!w->gone && w->last_assigned && w->inflight.empty() && !w->init_pending) {
            w->gone = true;
            w->expected_exit = true;
          }
        // Take the dead out; tasks queued behind a dead worker's current one
        // never started: they go back to the front of the queue in order.
        for (auto it = workers.begin(); it != workers.end();) {
          auto& w = *it;
          if (!w->gone) {
            ++it;
            continue;
          }
          ::epoll_ctl(epfd, EPOLL_CTL_DEL, w->ch.fd(), nullptr);
          // A worker that dies in its initializer was running no task: the
          // pool breaks below, with the cause named.
          if (!w->inflight.empty() && !w->expected_exit && !w->init_pending) {
            w->victim = std::move(w->inflight.front());
            w->inflight.pop_front();
          }
          while (!w->inflight.empty()) {
            pending.push_front(std::move(w->inflight.back()));
            w->inflight.pop_back();
          }
          dead.push_back(std::move(w));
          it = workers.erase(it);
        }
      }
      for (auto& w : dead) {
        bool was_init = w->init_pending;
        int st = reap(*w);
        if (w->victim || (was_init && !w->expected_exit)) {
          std::string msg = "celeriac::mp::ProcessPool: worker pid " + std::to_string(w->pid) +
                            " died from " + detail::describe_status(st) + " while running " +
                            (w->victim ? w->victim->name() : std::string("the initializer"));
          if (!WIFSIGNALED(st)) {
            msg = "celeriac::mp::ProcessPool: worker pid " + std::to_string(w->pid) + " exited (" +
                  detail::describe_status(st) + ") while running " +
                  (w->victim ? w->victim->name() : std::string("the initializer"));
          }
          if (w->victim) {
            fails.emplace_back(std::move(w->victim),
                               std::make_exception_ptr(
                                   WorkerDiedError(msg, w->pid, WIFSIGNALED(st) ? WTERMSIG(st) : 0,
                                                   WIFEXITED(st) ? WEXITSTATUS(st) : -1)));
          } else {
            std::lock_guard lock(mu);
            break_pool_locked(msg, fails);
          }
        }
      }
      {
        std::lock_guard lock(mu);
        if (!broken && started && (!shut || !pending.empty())) {
          try {
            while (workers.size() < nworkers) spawn_locked();
          } catch (const std::exception& e) {
            if (workers.empty())
              break_pool_locked(
                  std::string("celeriac::mp::ProcessPool: cannot start workers: ") + e.what(),
                  fails);
          }
        }
        dispatch_locked();
      }
      for (auto& [t, f] : done) t->complete(f);
      for (auto& [t, e] : fails) t->fail(e);
    }
    // Shut down: close every channel (the workers exit on end of stream) and reap.
    std::vector<std::unique_ptr<Worker>> rest;
    std::vector<TaskPtr> orphans;
    {
      std::lock_guard lock(mu);
      rest = std::move(workers);
      workers.clear();
      for (auto& t : pending) orphans.push_back(std::move(t));
      pending.clear();
    }
    for (auto& w : rest) w->ch.shutdown_write();
    for (auto& w : rest) {
      for (auto& t : w->inflight) orphans.push_back(std::move(t));
      reap(*w);
    }
    auto e = std::make_exception_ptr(BrokenExecutor("celeriac::mp::ProcessPool: shut down"));
    for (auto& t : orphans) t->fail(e);
  }

  void shutdown(bool wait, bool cancel_futures) {
    std::vector<TaskPtr> cancelled;
    {
      std::lock_guard lock(mu);
      shut = true;
      if (cancel_futures) {
        for (auto it = pending.begin(); it != pending.end();) {
          if (!(*it)->started) {
            cancelled.push_back(std::move(*it));
            it = pending.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
    for (auto& t : cancelled) t->cancel();
    wake();
    if (wait && io.joinable() && io.get_id() != std::this_thread::get_id()) io.join();
  }
};

namespace {
ProcessPoolOptions with_workers(std::size_t n) {
  ProcessPoolOptions o;
  o.max_workers = n;
  return o;
}
}  // namespace

ProcessPool::ProcessPool(std::size_t max_workers) : ProcessPool(with_workers(max_workers)) {}

ProcessPool::ProcessPool(ProcessPoolOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}

ProcessPool::~ProcessPool() {
  impl_->shutdown(true, false);
  if (impl_->io.joinable()) {
    if (impl_->io.get_id() == std::this_thread::get_id())
      impl_->io.detach();  // destroyed from its own callback: documented as not allowed
    else
      impl_->io.join();
  }
}

void ProcessPool::submit_task(std::unique_ptr<detail::PoolTask> task) {
  impl_->submit(std::move(task));
}

void ProcessPool::shutdown(bool wait, bool cancel_futures) {
  impl_->shutdown(wait, cancel_futures);
}

std::size_t ProcessPool::max_workers() const noexcept {
  return impl_->nworkers;
}

std::vector<pid_t> ProcessPool::pids() const {
  std::lock_guard lock(impl_->mu);
  std::vector<pid_t> out;
  for (auto& w : impl_->workers) out.push_back(w->pid);
  return out;
}

}  // namespace celeriac::mp
