// One AMQP 0-9-1 connection with one channel, through rabbitmq-c (librabbitmq):
// the synchronous methods the transport needs, every failure turned into a
// BrokerError that names the broker (password redacted) and the operation.
// Not thread-safe: the owner serializes calls.
#pragma once

#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "celeriac/tq/json.hpp"
#include "celeriac/tq/url.hpp"

namespace celeriac::tq::amqp::detail {

/// TLS settings of an amqps:// URL, from the query options spelled as
/// Celery's broker_use_ssl keys (and as rediss:// takes them).
struct TlsOptions {
  bool enabled = false;         ///< amqps://
  bool verify_peer = true;      ///< ssl_cert_reqs=required (default) vs none
  bool verify_hostname = true;  ///< ssl_check_hostname (only with verify_peer)
  std::string ca_certs;         ///< ssl_ca_certs: CA file or directory (default: the system's)
  std::string certfile;         ///< ssl_certfile: client certificate (PEM)
  std::string keyfile;          ///< ssl_keyfile: its key (default: in certfile)
};

/// Where and as whom to connect, from an amqp:// or amqps:// URL.
struct Endpoint {
  std::string host = "127.0.0.1";
  int port = 5672;
  std::string user = "guest";
  std::string password = "guest";
  std::string vhost = "/";
  std::string redacted;  ///< the URL without its password, for messages
  std::chrono::milliseconds connect_timeout{4000};
  /// Heartbeat interval proposed to the broker (?heartbeat=S, kombu's
  /// spelling; 0 = none). The broker's own (60 s by default) wins when lower.
  std::uint16_t heartbeat = 60;
  TlsOptions tls;

  /// Reads amqp[s]://[user[:password]@]host[:port][/vhost][?options]; "" or
  /// "/" = vhost "/". ConfigError naming the option on a bad value.
  static Endpoint from_url(const Url& url);
};

/// A message as AMQP carries it: body and basic properties.
struct Message {
  std::string body;
  std::string content_type;
  std::string content_encoding;
  std::string correlation_id;
  std::string reply_to;
  std::string expiration;
  std::optional<int> priority;  ///< AMQP meaning (higher = more urgent)
  int delivery_mode = 2;        ///< 2 = persistent
  OrderedJson headers = OrderedJson::object();
};

/// A message read from a consumer or basic.get.
struct Received {
  Message message;
  std::uint64_t delivery_tag = 0;
  bool redelivered = false;
  std::string exchange;
  std::string routing_key;
  std::string consumer_tag;
};

/// Queue declaration options.
struct QueueSpec {
  bool durable = true;
  bool exclusive = false;
  bool auto_delete = false;
  OrderedJson arguments = OrderedJson::object();  ///< x-max-priority, x-message-ttl, ...
};

/// One publisher-confirm frame: basic.ack / basic.nack of sequence number
/// `tag` (and every earlier one when `multiple`), or basic.return of an
/// unroutable message (its broker ack follows).
struct ConfirmEvent {
  enum class Kind { ack, nack, returned };
  Kind kind = Kind::ack;
  std::uint64_t tag = 0;  ///< ack/nack: the sequence number
  bool multiple = false;  ///< ack/nack: every unsettled one up to `tag`
  std::string task_id;    ///< returned: the message's correlation_id
  std::string why;        ///< returned: the broker's reply code and text
};

/// One connection and its channel 1.
class Connection {
 public:
  explicit Connection(Endpoint endpoint);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// Connects, logs in and opens channel 1 (no-op when open). Throws BrokerError.
  void open();
  /// Closes politely when possible; idempotent, never throws.
  void close() noexcept;
  /// True while the connection is believed healthy.
  bool is_open() const noexcept { return state_ != nullptr; }
  /// True when the last open() failed because the broker refused us (its
  /// certificate failed verification, or the login was refused): retrying
  /// cannot help.
  bool refused() const noexcept { return refused_; }
  /// Increments at every successful open(): delivery tags of an older
  /// generation belong to a dead connection.
  std::uint64_t generation() const noexcept { return generation_; }
  /// The socket, for poll() while no lock is held (-1 when closed).
  int socket_fd() const noexcept;
  /// Frames already read off the socket and not yet consumed.
  bool has_buffered() const noexcept;
  /// The endpoint (for messages).
  const Endpoint& endpoint() const noexcept { return ep_; }
  /// The heartbeat interval agreed with the broker, in seconds (0 = none).
  int heartbeat() const noexcept;
  /// Sends a heartbeat frame when one is due, so a connection the owner does
  /// not use for a while (an idle publisher, a consumer whose worker is busy)
  /// stays alive. Never reads. Throws BrokerError when the socket is dead.
  void keepalive();

  /// confirm.select on the channel; publishes get sequence numbers from 1.
  void enable_confirms();
  /// Sequence number the next publish gets (confirm mode).
  std::uint64_t next_sequence() const noexcept { return next_seq_; }
  /// Changes whenever sequence numbers restart (a new connection or a
  /// reopened channel): confirms for older publishes will never come.
  std::uint64_t channel_epoch() const noexcept { return channel_epoch_; }

  void declare_exchange(std::string_view name, std::string_view type, bool durable,
                        bool auto_delete);
  /// queue.declare; returns the ready message count. With `passive`, returns
  /// nullopt when the queue does not exist (the channel is reopened).
  std::optional<std::uint32_t> declare_queue(std::string_view name, const QueueSpec& spec,
                                             bool passive = false);
  void bind_queue(std::string_view queue, std::string_view exchange, std::string_view key);
  /// queue.purge; returns how many ready messages were deleted.
  std::uint32_t purge_queue(std::string_view queue);
  void delete_queue(std::string_view queue);

  /// basic.publish (asynchronous; see next_confirm). Returns its sequence number.
  std::uint64_t publish(std::string_view exchange, std::string_view routing_key, const Message& m,
                        bool mandatory);
  /// The next publisher-confirm frame, waiting up to `timeout` (zero: only
  /// what is already readable); nullopt on timeout. Other frames are skipped;
  /// a channel or connection close throws BrokerError.
  std::optional<ConfirmEvent> next_confirm(std::chrono::milliseconds timeout);

  void qos(std::uint16_t prefetch_count);
  /// basic.consume; returns the consumer tag.
  std::string consume(std::string_view queue, bool no_ack = false, bool exclusive = false);
  void cancel(std::string_view consumer_tag);
  /// The next delivery to any consumer of this channel, waiting up to
  /// `timeout`; nullopt on timeout.
  std::optional<Received> next_delivery(std::chrono::milliseconds timeout);
  /// basic.get (manual ack); nullopt when the queue is empty.
  std::optional<Received> get(std::string_view queue);

  void ack(std::uint64_t tag, bool multiple = false);
  void reject(std::uint64_t tag, bool requeue);
  void nack(std::uint64_t tag, bool multiple, bool requeue);

 private:
  void check_reply(const amqp_rpc_reply_t& r, std::string_view what);
  void check_status(int status, std::string_view what);
  std::string library_error(int status) const;
  [[noreturn]] void fail(const std::string& why);
  void reopen_channel();
  void handle_async_close(const amqp_frame_t& frame, std::string_view what);

  Endpoint ep_;
  amqp_connection_state_t state_ = nullptr;
  std::uint64_t generation_ = 0;
  bool refused_ = false;
  bool confirms_ = false;
  std::uint64_t next_seq_ = 1;
  std::uint64_t channel_epoch_ = 0;
  std::chrono::steady_clock::time_point last_keepalive_{};
  int last_heartbeat_ = 0;  // the agreed interval, still known after a close
};

}  // namespace celeriac::tq::amqp::detail
