// FdWatch: a file descriptor registered once with the loop's epoll (edge
// triggered), with awaitables for "readable" and "writable". The building
// block of sockets, pipes, signalfd... (see docs/aio-internals.md).
#pragma once

#include <coroutine>
#include <cstdint>
#include <memory>
#include <utility>

#include "celeriac/aio/event_loop.hpp"

namespace celeriac::aio {

namespace detail {

/// What epoll's data.ptr points at; owned by an FdWatch.
class FdState {
 public:
  static constexpr std::uint32_t kReadEdge = 1;   // readable since the last wait
  static constexpr std::uint32_t kWriteEdge = 2;  // writable since the last wait
  EventLoop* loop = nullptr;
  int fd = -1;
  std::uint32_t edges = 0;
  bool daemon = false;
  /// EPOLLRDHUP, EPOLLHUP or EPOLLERR was reported once (stays set): the
  /// peer hung up, so a short read no longer means "wait for the next edge".
  bool hup_seen = false;
  Suspension* reader = nullptr;
  Suspension* writer = nullptr;
  /// Called by the loop with epoll's event bits.
  void on_events(std::uint32_t events) noexcept;
};

}  // namespace detail

/// A waiter created by FdWatch::readable()/writable(); co_await it once.
class ReadinessAwaiter : public Suspension {
 public:
  /// Waits for `st`'s fd to become readable (or writable when `write`).
  ReadinessAwaiter(detail::FdState* st, bool write) noexcept : st_(st), write_(write) {}
  /// The moved-from awaiter forgets the fd: it may outlive the FdWatch (a
  /// temporary of the co_await expression lives across the suspension).
  ReadinessAwaiter(ReadinessAwaiter&& o) noexcept
      : st_(std::exchange(o.st_, nullptr)), write_(o.write_) {}
  ~ReadinessAwaiter() { disarm(); }

  /// Completes at once when an edge arrived since the last wait (consumes it).
  bool await_ready() noexcept;
  bool await_suspend(std::coroutine_handle<> h);
  /// Throws CancelledError if cancelled, std::system_error(EBADF) if the
  /// FdWatch was closed while waiting.
  void await_resume();

 private:
  friend class detail::FdState;
  friend class FdWatch;
  static bool on_cancel(Suspension& s) noexcept;
  void disarm() noexcept;
  Suspension*& slot() const noexcept { return write_ ? st_->writer : st_->reader; }

  detail::FdState* st_;
  bool write_;
  bool holds_clock_ = false;
  bool closed_ = false;
};

/// A file descriptor watched by an event loop for readiness.
///
/// Registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET. The pattern is
/// asyncio's: try the non-blocking syscall; on EAGAIN `co_await
/// watch.readable()` (or writable()) and try again. A wait may complete
/// spuriously (an old edge); always retry the syscall. At most one task waits
/// for reading and one for writing at a time (InvalidStateError otherwise).
/// Does not own or close the fd. Loop thread only.
class FdWatch {
 public:
  FdWatch() noexcept = default;
  /// Registers `fd` (which should be non-blocking) with `loop`'s epoll;
  /// std::system_error if epoll_ctl fails.
  FdWatch(EventLoop& loop, int fd);
  /// Takes over `o`'s registration.
  FdWatch(FdWatch&& o) noexcept = default;
  /// Closes this watch, then takes over `o`'s registration.
  FdWatch& operator=(FdWatch&& o) noexcept {
    if (this != &o) {
      close();
      st_ = std::move(o.st_);
    }
    return *this;
  }
  /// Calls close().
  ~FdWatch() { close(); }

  /// Unregisters from epoll (the fd stays open); tasks waiting on it resume
  /// with std::system_error(EBADF). Idempotent.
  void close() noexcept;

  /// Whether the watch holds a registration.
  bool valid() const noexcept { return static_cast<bool>(st_); }
  /// The watched fd (-1 when closed).
  int fd() const noexcept { return st_ ? st_->fd : -1; }
  /// The loop the fd is registered with (null when closed).
  EventLoop* loop() const noexcept { return st_ ? st_->loop : nullptr; }

  /// Awaitable: the fd is readable (or at EOF, hung up, in error).
  ReadinessAwaiter readable() { return ReadinessAwaiter(checked(), false); }
  /// Awaitable: the fd is writable (or hung up, in error).
  ReadinessAwaiter writable() { return ReadinessAwaiter(checked(), true); }

  /// True once epoll reported a hang-up or an error on the fd (EPOLLRDHUP,
  /// EPOLLHUP, EPOLLERR). Until then, after a read that came back shorter
  /// than asked the fd is drained and the next edge will announce more data,
  /// so a reader may wait without trying the read that would fail with EAGAIN.
  bool hup_seen() const noexcept { return st_ && st_->hup_seen; }

  /// A daemon watch (e.g. a signalfd) does not hold the virtual clock while a
  /// task waits on it.
  void set_daemon(bool on) noexcept {
    if (st_) st_->daemon = on;
  }

 private:
  detail::FdState* checked() const;
  std::unique_ptr<detail::FdState> st_;
};

}  // namespace celeriac::aio
