// signalfd plumbing of add_signal_handler.
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include "celeriac/aio/detail/io_signal.hpp"
#include "celeriac/aio/socket.hpp"

namespace celeriac::aio::detail {

SignalFd::SignalFd() {
  sigemptyset(&mask_);
  sigemptyset(&blocked_by_us_);
}

SignalFd::~SignalFd() {
  if (fd_ >= 0) ::close(fd_);
  // Restore the thread's mask if the destructor runs on the loop thread; on
  // another thread this only touches that thread's mask, which had none of
  // ours blocked by us.
  pthread_sigmask(SIG_UNBLOCK, &blocked_by_us_, nullptr);
}

void SignalFd::add(int sig) {
  if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP)
    throw std::invalid_argument("add_signal_handler: signal " + std::to_string(sig) +
                                " cannot be caught");
  if (sigismember(&mask_, sig)) return;
  sigset_t one, old;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_BLOCK, &one, &old);
  if (!sigismember(&old, sig)) sigaddset(&blocked_by_us_, sig);
  sigaddset(&mask_, sig);
  int fd = ::signalfd(fd_, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    sigdelset(&mask_, sig);
    throw_os_error(e, "signalfd for signal", std::to_string(sig));
  }
  fd_ = fd;
}

bool SignalFd::remove(int sig) {
  if (sig <= 0 || sig >= NSIG || !sigismember(&mask_, sig)) return false;
  sigdelset(&mask_, sig);
  if (fd_ >= 0) ::signalfd(fd_, &mask_, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sigismember(&blocked_by_us_, sig)) {
    sigdelset(&blocked_by_us_, sig);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  }
  return true;
}

bool SignalFd::contains(int sig) const noexcept {
  return sig > 0 && sig < NSIG && sigismember(&mask_, sig) == 1;
}

bool SignalFd::empty() const noexcept {
  return sigisemptyset(&mask_) != 0;
}

std::vector<int> SignalFd::read_pending() {
  std::vector<int> out;
  if (fd_ < 0) return out;
  signalfd_siginfo info[16];
  for (;;) {
    ssize_t n = ::read(fd_, info, sizeof info);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // EAGAIN: drained
    }
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(signalfd_siginfo)); ++i)
      out.push_back(static_cast<int>(info[i].ssi_signo));
    if (static_cast<std::size_t>(n) < sizeof info) break;
  }
  return out;
}

}  // namespace celeriac::aio::detail
