// Pipelined single publishes for RedisBroker: "write now, confirm later".
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "celeriac/redis/connection.hpp"

namespace celeriac::tq::redis::detail {

/// Writes each publish's commands to one dedicated connection and returns at
/// once, without waiting for Redis's reply; the replies are read later, a
/// few at a time, by the next publishes (never more than `window` left
/// unconfirmed) or by confirm(). A burst of delay() calls from one thread
/// therefore costs one write each instead of one round trip each, and a lone
/// call is not delayed at all (nothing lingers in a buffer).
///
/// Confirmation never waits for a caller: a thread of the publisher reads
/// the replies of writes older than `linger` (2 ms) when no publish has done
/// so, so an idle producer's messages are confirmed, and rewritten after a
/// lost connection, as promptly as a busy one's.
///
/// Errors: a publish Redis refused (OOM, READONLY, ...) is reported by the
/// next publish() or confirm() as ReplyError naming its task id and queue.
/// A connection lost with publishes unconfirmed reconnects (until
/// `reconnect_timeout`) and writes them again: at least once, as kombu's
/// publish retry; when it cannot, ConnectionError names the ids not known
/// to be published, and they are dropped from the window.
/// Thread-safe; publishes keep their order.
class Publisher {
 public:
  Publisher(celeriac::redis::Url url, celeriac::redis::ConnectOptions opts,
            std::chrono::milliseconds reconnect_timeout, std::size_t window);

  /// Writes `commands` (the last of them the message's LPUSH); errors name
  /// `queue` and the task id found in the envelope.
  void publish(celeriac::redis::Pipeline commands, std::string queue);
  /// Waits until Redis has confirmed every publish written so far.
  void confirm();
  /// Publishes written and not yet confirmed.
  std::size_t unconfirmed() const;
  /// Confirms what it can and closes the connection (no reconnect).
  void close() noexcept;

  /// Publisher with its confirming thread stopped.
  ~Publisher();

 private:
  struct Written {
    celeriac::redis::Pipeline commands;
    std::string queue;
  };
  void read_confirmations(std::size_t keep, bool wait);
  void take_reply(const celeriac::redis::Reply& r);
  template <class Step>
  void with_rewrites(Step&& step);
  void rewrite_after_error(std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void give_up(const std::exception& e);
  celeriac::redis::Connection& connection();
  void confirm_locked(std::unique_lock<std::mutex>& lk);
  void confirmer_loop();
  void throw_refused();

  celeriac::redis::Url url_;
  celeriac::redis::ConnectOptions opts_;
  std::chrono::milliseconds reconnect_timeout_;
  std::size_t window_;
  mutable std::mutex mu_;
  std::optional<celeriac::redis::Connection> conn_;
  std::deque<Written> written_;   // oldest first, replies pending
  std::size_t replies_left_ = 0;  // of written_.front()'s commands
  std::string refused_;           // errors to report at the next call
  std::chrono::steady_clock::duration linger_ = std::chrono::milliseconds(2);
  std::condition_variable confirmer_cv_;
  bool stop_ = false;
  std::thread confirmer_;  // started by the first publish
};

}  // namespace celeriac::tq::redis::detail
