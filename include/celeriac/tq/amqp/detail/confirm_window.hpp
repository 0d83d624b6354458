// Publisher confirms collected later: the publishes written on a confirm-mode
// channel and not yet confirmed, kept so a refusal can name its task and a
// lost channel's publishes can be written again. The same semantics as the
// Redis publisher (src/tq/redis/publisher.hpp), on AMQP sequence numbers.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>

#include "celeriac/tq/amqp/detail/connection.hpp"

namespace celeriac::tq::amqp::detail {

/// Unconfirmed publishes of one channel, oldest first. Not thread-safe: the
/// owner serializes calls (and owns the connection they run on).
class ConfirmWindow {
 public:
  /// basic.publish of `m` (mandatory) on `c`, remembered until confirmed
  /// (`m` is taken only when the write succeeded).
  /// First writes the window again when `c`'s channel is not the one the
  /// window's publishes went to (see republish()).
  void publish(Connection& c, std::string exchange, std::string routing_key, Message&& m);
  /// Reads confirms from `c` until at most `keep` publishes are unconfirmed,
  /// waiting up to `timeout` (zero: only what is already readable). Returns
  /// false when the time ran out first. A nack or return is kept for
  /// take_refused(). Throws BrokerError when the connection fails (the
  /// publishes stay, for republish()).
  bool settle(Connection& c, std::size_t keep, std::chrono::milliseconds timeout);
  /// Writes every unconfirmed publish again (new sequence numbers) when `c`'s
  /// channel changed since they were written: their confirms will never come,
  /// and they may or may not have been stored (at least once, as kombu's
  /// publish retry). No-op otherwise.
  void republish(Connection& c);
  /// Publishes written and not yet confirmed.
  std::size_t size() const noexcept { return written_.size(); }
  /// Refusals seen so far ("task <id> to queue '<q>': <why>; ..."), cleared;
  /// "" when none.
  std::string take_refused();
  /// Forgets every unconfirmed publish; returns their task ids for an error
  /// message (the first ten, then a count), "" when there were none.
  std::string drop_all();

 private:
  struct Written {
    std::uint64_t seq = 0;
    std::string exchange;
    std::string routing_key;
    Message message;
    bool settled = false;  // confirmed out of order, still behind an older one
  };
  void take(const ConfirmEvent& e);
  void refuse(const std::string& task_id, const std::string& queue, const std::string& why);

  std::deque<Written> written_;  // ascending seq
  std::uint64_t epoch_ = 0;      // channel_epoch() of the connection they went to
  std::string refused_;
};

}  // namespace celeriac::tq::amqp::detail
