// signalfd plumbing for add_signal_handler: the signals a loop handles are
// blocked in the loop's thread and read from one non-blocking signalfd.
#pragma once

#include <signal.h>

#include <vector>

namespace celeriac::aio::detail {

class SignalFd {
 public:
  SignalFd();
  ~SignalFd();
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  /// The signalfd (-1 until the first add()).
  int fd() const noexcept { return fd_; }
  /// Blocks `sig` in the calling thread and routes it to the signalfd.
  /// Throws std::invalid_argument for SIGKILL/SIGSTOP or a bad number.
  void add(int sig);
  /// Stops routing `sig` and unblocks it in the calling thread if add()
  /// blocked it. Returns false if it was not routed.
  bool remove(int sig);
  /// Whether `sig` is routed here.
  bool contains(int sig) const noexcept;
  /// Whether no signal is routed here.
  bool empty() const noexcept;
  /// Reads every pending signal without blocking, in arrival order.
  std::vector<int> read_pending();

 private:
  int fd_ = -1;
  sigset_t mask_;
  sigset_t blocked_by_us_;
};

}  // namespace celeriac::aio::detail
