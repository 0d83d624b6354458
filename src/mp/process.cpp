#include "celeriac/mp/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include "sys.hpp"

#include <cstring>
#include <mutex>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/fork_server.hpp"

namespace celeriac::mp {

struct Process::Impl {
  detail::TaskCall call;
  int redirects[2] = {-1, -1};  // where the child's stdout, stderr go (owned)
  mutable std::mutex mu;
  pid_t pid = -1;
  int pidfd = -1;
  bool started = false;
  mutable std::optional<int> exitcode;

  ~Impl() {
    detail::close_fds(call.fds);
    for (int fd : redirects)
      if (fd >= 0) ::close(fd);
    if (pidfd >= 0) ::close(pidfd);
  }
  // Collects the status if the child has ended within `ms`; caller holds mu.
  bool poll_end(int ms) const {
    if (exitcode) return true;
    if (!detail::wait_pidfd(pidfd, ms)) return false;
    exitcode = detail::exitcode_from_status(detail::reap_child(pid));
    return true;
  }
};

Process::Process(detail::TaskCall call) : impl_(std::make_unique<Impl>()) {
  impl_->call = std::move(call);
}

Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (impl_ && impl_->started) join();
    impl_ = std::move(o.impl_);
  }
  return *this;
}

Process::~Process() {
  if (impl_ && impl_->started) {
    try {
      join();
    } catch (...) {
    }
  }
}

void Process::redirect(int target, int fd) {
  if (!impl_) throw InvalidStateError("celeriac::mp::Process: moved-from process");
  std::lock_guard lock(impl_->mu);
  if (impl_->started) throw InvalidStateError("celeriac::mp::Process: redirect after start");
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) detail::throw_errno("dup of a redirect target");
  int& slot = impl_->redirects[target - 1];
  if (slot >= 0) ::close(slot);
  slot = copy;
}

void Process::redirect_stdout(int fd) {
  redirect(STDOUT_FILENO, fd);
}
void Process::redirect_stderr(int fd) {
  redirect(STDERR_FILENO, fd);
}

void Process::start() {
  if (!impl_) throw InvalidStateError("celeriac::mp::Process: moved-from process");
  std::lock_guard lock(impl_->mu);
  if (impl_->started) throw InvalidStateError("celeriac::mp::Process: already started");
  int sv[2];
  detail::make_socketpair(sv);
  detail::Channel ch(sv[0]);
  detail::SpawnedChild c;
  try {
    c = detail::spawn_child(sv[1]);
  } catch (...) {
    ::close(sv[1]);
    throw;
  }
  ::close(sv[1]);
  impl_->pid = c.pid;
  impl_->pidfd = c.pidfd;
  impl_->started = true;
  auto& call = impl_->call;
  // kRunOnce head: invoke, fn, then a mask of the redirected streams whose
  // descriptors follow the arguments' (see child_main).
  std::uint64_t head[3] = {reinterpret_cast<std::uintptr_t>(call.invoke), call.fn, 0};
  for (int target : {STDOUT_FILENO, STDERR_FILENO}) {
    int& fd = impl_->redirects[target - 1];
    if (fd < 0) continue;
    head[2] |= std::uint64_t{1} << target;
    call.fds.push_back(std::exchange(fd, -1));
  }
  ch.enqueue(detail::kRunOnce, 0, std::string_view(reinterpret_cast<char*>(head), sizeof head),
             call.packed_args(), &call.fds);
  try {
    // The child reads as we write; it only stops reading if it died.
    ch.send_all(detail::Clock::time_point::max());
  } catch (const ConnectionClosed&) {
  }
  call.args = msgpack::sbuffer(0);  // sent: free it
}

bool Process::join() {
  if (!impl_ || !impl_->started)
    throw InvalidStateError("celeriac::mp::Process: join before start");
  std::lock_guard lock(impl_->mu);
  return impl_->poll_end(-1);
}

bool Process::join(std::chrono::steady_clock::duration timeout) {
  if (!impl_ || !impl_->started)
    throw InvalidStateError("celeriac::mp::Process: join before start");
  std::lock_guard lock(impl_->mu);
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
  return impl_->poll_end(
      static_cast<int>(std::max<long long>(0, std::min<long long>(ms, 1 << 30))));
}

bool Process::is_alive() const {
  if (!impl_ || !impl_->started) return false;
  std::lock_guard lock(impl_->mu);
  return !impl_->poll_end(0);
}

pid_t Process::pid() const noexcept {
  return impl_ ? impl_->pid : -1;
}

std::optional<int> Process::exitcode() const {
  if (!impl_ || !impl_->started) return std::nullopt;
  std::lock_guard lock(impl_->mu);
  impl_->poll_end(0);
  return impl_->exitcode;
}

void Process::send_signal(int sig) {
  if (!impl_ || !impl_->started) throw InvalidStateError("celeriac::mp::Process: not started");
  std::lock_guard lock(impl_->mu);
  if (impl_->exitcode) return;
  if (detail::sys_pidfd_send_signal(impl_->pidfd, sig) != 0 && errno != ESRCH)
    detail::throw_errno("pidfd_send_signal");
}

void Process::terminate() {
  send_signal(SIGTERM);
}
void Process::kill() {
  send_signal(SIGKILL);
}

}  // namespace celeriac::mp
