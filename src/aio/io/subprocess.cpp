// create_subprocess_exec on posix_spawn + pidfd.
#include "celeriac/aio/subprocess.hpp"

#include <signal.h>
#include <unistd.h>

#include "celeriac/aio/detail/io_spawn.hpp"
#include "celeriac/aio/detail/io_wait.hpp"

namespace celeriac::aio {
namespace detail {

struct ProcessState {
  pid_t pid = -1;
  int pidfd = -1;
  FdWatch watch;
  std::optional<int> returncode;
  bool reaping = false;  // a task waits on the pidfd
  List waiters;          // other tasks in wait()
  StreamWriter in;
  StreamReader out, err;
  ~ProcessState() {
    watch.close();
    if (pidfd >= 0) ::close(pidfd);
    // A child still running is left to run (as asyncio does); reap it if it
    // already exited so it does not stay a zombie.
    if (!returncode && pid > 0) try_reap(pid);
  }
};

namespace {

void ignore_sigpipe_once() {
  // Writing to a pipe whose reader exited raises SIGPIPE; asyncio (Python)
  // ignores it process-wide, and so do we the first time a pipe is made, if
  // nobody installed a disposition for it.
  static const bool done = [] {
    struct sigaction old {};
    ::sigaction(SIGPIPE, nullptr, &old);
    if (old.sa_handler == SIG_DFL) ::signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)done;
}

StdioSpec to_spec(Stdio s) {
  switch (s) {
    case Stdio::pipe:
      return {StdioKind::pipe, -1};
    case Stdio::devnull:
      return {StdioKind::devnull, -1};
    case Stdio::stdout_:
      return {StdioKind::stdout_, -1};
    default:
      return {StdioKind::inherit, -1};
  }
}

Task<void> pump_in(StreamWriter w, std::string input) {
  try {
    if (!input.empty()) {
      w.write(input);
      co_await w.drain();
    }
  } catch (const ConnectionError&) {
    // The child exited (or closed stdin) without reading everything.
  }
  if (!w.is_closing()) w.close();
}

Task<std::string> pump_out(StreamReader r) {
  co_return co_await r.read();
}

}  // namespace
}  // namespace detail

pid_t Process::pid() const {
  return st_ ? st_->pid : -1;
}

std::optional<int> Process::returncode() const {
  return st_ ? st_->returncode : std::nullopt;
}

Task<int> Process::wait() {
  auto st = st_;
  if (!st) throw InvalidStateError("Process: empty handle");
  while (!st->returncode) {
    if (st->reaping) {
      co_await detail::WaitListAwaiter(st->waiters);
      continue;
    }
    if (auto rc = detail::try_reap(st->pid)) {
      st->returncode = rc;
      break;
    }
    st->reaping = true;
    struct Reset {
      detail::ProcessState* s;
      ~Reset() {
        s->reaping = false;
        // Another waiter takes over (if we were cancelled) or sees the code.
        detail::wake_all(s->waiters);
      }
    } reset{st.get()};
    co_await detail::ReadyOrClosed(st->watch.readable());
  }
  detail::wake_all(st->waiters);
  co_return *st->returncode;
}

Task<CommunicateResult> Process::communicate(std::string input) {
  auto st = st_;
  if (!st) throw InvalidStateError("Process: empty handle");
  EventLoop& loop = EventLoop::current();
  // The three pumps run concurrently; if we are cancelled, they are too.
  std::vector<TaskHandle<void>> writers;
  std::vector<TaskHandle<std::string>> readers;
  struct CancelAll {
    std::vector<TaskHandle<void>>& w;
    std::vector<TaskHandle<std::string>>& r;
    ~CancelAll() {
      for (auto& h : w)
        if (!h.done()) h.cancel();
      for (auto& h : r)
        if (!h.done()) h.cancel();
    }
  } cancel_all{writers, readers};
  if (st->in.valid()) writers.push_back(loop.spawn(detail::pump_in(st->in, std::move(input))));
  TaskHandle<std::string> out_task, err_task;
  if (st->out.valid()) {
    out_task = loop.spawn(detail::pump_out(st->out));
    readers.push_back(out_task);
  }
  if (st->err.valid()) {
    err_task = loop.spawn(detail::pump_out(st->err));
    readers.push_back(err_task);
  }
  CommunicateResult res;
  for (auto& w : writers) co_await w;
  if (out_task.valid()) res.out = co_await out_task;
  if (err_task.valid()) res.err = co_await err_task;
  co_await wait();
  co_return res;
}

void Process::send_signal(int sig) {
  if (!st_) throw InvalidStateError("Process: empty handle");
  if (st_->returncode) return;
  detail::send_signal_pidfd(st_->pidfd, sig);
}

void Process::terminate() {
  send_signal(SIGTERM);
}
void Process::kill() {
  send_signal(SIGKILL);
}

StreamWriter& Process::stdin_() {
  if (!st_) throw InvalidStateError("Process: empty handle");
  return st_->in;
}
StreamReader& Process::stdout_() {
  if (!st_) throw InvalidStateError("Process: empty handle");
  return st_->out;
}
StreamReader& Process::stderr_() {
  if (!st_) throw InvalidStateError("Process: empty handle");
  return st_->err;
}

namespace {

// Spawns the child and wraps its pidfd and pipes for the loop.
Process start_process(EventLoop& loop, std::string program, std::vector<std::string> args,
                      const SubprocessOptions& options) {
  detail::SpawnOptions so;
  so.argv.push_back(std::move(program));
  for (auto& a : args) so.argv.push_back(std::move(a));
  so.env = options.env;
  so.cwd = options.cwd;
  so.in = detail::to_spec(options.stdin_);
  so.out = detail::to_spec(options.stdout_);
  so.err = detail::to_spec(options.stderr_);
  so.new_process_group = options.new_process_group;
  so.new_session = options.start_new_session;
  if (options.stdin_ == Stdio::pipe) detail::ignore_sigpipe_once();
  detail::Spawned sp = detail::spawn_process(so);
  auto st = std::make_shared<detail::ProcessState>();
  st->pid = sp.pid;
  st->pidfd = sp.pidfd;
  st->watch = FdWatch(loop, sp.pidfd);
  if (sp.stdin_fd >= 0) st->in = make_stream(sp.stdin_fd, options.stream).writer;
  if (sp.stdout_fd >= 0) st->out = make_stream(sp.stdout_fd, options.stream).reader;
  if (sp.stderr_fd >= 0) st->err = make_stream(sp.stderr_fd, options.stream).reader;
  return Process(st);
}

}  // namespace

Task<Process> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                     SubprocessOptions options) {
  co_return start_process(EventLoop::current(), std::move(program), std::move(args), options);
}

}  // namespace celeriac::aio
