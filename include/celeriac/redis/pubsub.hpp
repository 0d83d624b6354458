// A Redis pub/sub connection (SUBSCRIBE / PSUBSCRIBE).
#pragma once

#include <optional>
#include <set>
#include <string>

#include "celeriac/redis/connection.hpp"

namespace celeriac::redis {

/// One message received on a subscription.
struct Message {
  std::string channel;  ///< the channel it was published on
  std::string pattern;  ///< the matching pattern (PSUBSCRIBE), else empty
  std::string data;     ///< the payload
};

/// A connection in subscriber mode. Remembers its channels and patterns so
/// reconnect() re-subscribes them. Not thread-safe.
class Subscriber {
 public:
  /// Connects (AUTH/SELECT as the URL says).
  explicit Subscriber(const Url& url, ConnectOptions opts = {});

  /// SUBSCRIBE; returns once the server confirmed every channel.
  void subscribe(const std::vector<std::string>& channels);
  /// PSUBSCRIBE; returns once the server confirmed every pattern.
  void psubscribe(const std::vector<std::string>& patterns);
  /// UNSUBSCRIBE (the confirmation is consumed by later get_message calls).
  void unsubscribe(const std::vector<std::string>& channels);
  /// PUNSUBSCRIBE.
  void punsubscribe(const std::vector<std::string>& patterns);
  /// The next message, or nullopt when none arrived within `timeout`.
  /// Connection errors throw ConnectionError (then call reconnect()).
  std::optional<Message> get_message(Duration timeout);
  /// Reconnects (with backoff until `deadline`) and re-subscribes.
  void reconnect(std::chrono::steady_clock::time_point deadline, Backoff backoff = {});
  /// True while the connection is open.
  bool is_open() const { return conn_ && conn_->is_open(); }
  /// Closes the connection.
  void close();

 private:
  void send_and_confirm(const char* verb, const std::vector<std::string>& names);
  std::optional<Message> to_message(const Reply& r);
  Url url_;
  ConnectOptions opts_;
  std::optional<Connection> conn_;
  std::set<std::string> channels_;
  std::set<std::string> patterns_;
  std::vector<Message> pending_;  // messages seen while waiting for confirmations
};

}  // namespace celeriac::redis
