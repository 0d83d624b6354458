#include "celeriac/tq/amqp/detail/connection.hpp"

#include "celeriac/tq/amqp/detail/codec.hpp"
#include "celeriac/tq/amqp/detail/socket.hpp"
#include "celeriac/tq/errors.hpp"

namespace celeriac::tq::amqp::detail {

namespace {

std::string str(amqp_bytes_t b) {
  return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}

amqp_bytes_t bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

timeval to_timeval(std::chrono::milliseconds ms) {
  if (ms.count() < 0) ms = std::chrono::milliseconds(0);
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

Message read_properties(const amqp_basic_properties_t& p, amqp_bytes_t body) {
  Message m;
  m.body = str(body);
  if (p._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) m.content_type = str(p.content_type);
  if (p._flags & AMQP_BASIC_CONTENT_ENCODING_FLAG) m.content_encoding = str(p.content_encoding);
  if (p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) m.correlation_id = str(p.correlation_id);
  if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) m.reply_to = str(p.reply_to);
  if (p._flags & AMQP_BASIC_EXPIRATION_FLAG) m.expiration = str(p.expiration);
  if (p._flags & AMQP_BASIC_PRIORITY_FLAG) m.priority = p.priority;
  m.delivery_mode = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) ? p.delivery_mode : 1;
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) m.headers = table_to_json(p.headers);
  return m;
}

}  // namespace

Connection::Connection(Endpoint endpoint) : ep_(std::move(endpoint)) {}

Connection::~Connection() {
  close();
}

void Connection::fail(const std::string& why) {
  close();
  throw BrokerError("AMQP broker " + ep_.redacted + ": " + why);
}

void Connection::open() {
  if (state_) return;
  refused_ = false;
  state_ = amqp_new_connection();
  if (!state_) throw BrokerError("AMQP broker " + ep_.redacted + ": out of memory");
  if (std::string why = open_socket(state_, ep_); !why.empty()) {
    refused_ = why.find("certificate verify failed") != std::string::npos;  // socket.cpp's words
    fail(why);
  }
  amqp_rpc_reply_t r = amqp_login(state_, ep_.vhost.c_str(), 0, 131072, ep_.heartbeat,
                                  AMQP_SASL_METHOD_PLAIN, ep_.user.c_str(), ep_.password.c_str());
  refused_ =
      r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CONNECTION_CLOSE_METHOD &&
      static_cast<amqp_connection_close_t*>(r.reply.decoded)->reply_code == AMQP_ACCESS_REFUSED;
  check_reply(r, "login as '" + ep_.user + "' to vhost '" + ep_.vhost + "'");
  amqp_channel_open(state_, 1);
  check_reply(amqp_get_rpc_reply(state_), "channel.open");
  confirms_ = false;
  next_seq_ = 1;
  ++channel_epoch_;
  last_keepalive_ = std::chrono::steady_clock::now();
  last_heartbeat_ = amqp_get_heartbeat(state_);
  ++generation_;
}

int Connection::heartbeat() const noexcept {
  return state_ ? amqp_get_heartbeat(state_) : 0;
}

void Connection::keepalive() {
  int interval = heartbeat();
  if (interval <= 0) return;
  auto now = std::chrono::steady_clock::now();
  // Twice per interval, as the broker expects a frame within each one; an
  // extra heartbeat beside other traffic is harmless.
  if (now - last_keepalive_ < std::chrono::milliseconds(interval * 500)) return;
  last_keepalive_ = now;
  amqp_frame_t beat{};
  beat.frame_type = AMQP_FRAME_HEARTBEAT;
  beat.channel = 0;
  check_status(amqp_send_frame(state_, &beat), "sending a heartbeat");
}

void Connection::close() noexcept {
  if (!state_) return;
  amqp_connection_state_t s = state_;
  state_ = nullptr;
  // Polite close with a short bound; a dead peer must not hang us.
  if (amqp_get_socket(s)) {
    amqp_channel_close(s, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(s, AMQP_REPLY_SUCCESS);
  }
  amqp_destroy_connection(s);
}

int Connection::socket_fd() const noexcept {
  return state_ ? amqp_get_sockfd(state_) : -1;
}

bool Connection::has_buffered() const noexcept {
  return state_ && (amqp_frames_enqueued(state_) || amqp_data_in_buffer(state_));
}

std::string Connection::library_error(int status) const {
  if (status == AMQP_STATUS_HEARTBEAT_TIMEOUT)
    return "no frame from the broker for two heartbeat intervals (" +
           std::to_string(last_heartbeat_) +
           " s each): heartbeat timeout, connection presumed dead";
  return amqp_error_string2(status);
}

void Connection::check_status(int status, std::string_view what) {
  if (status != AMQP_STATUS_OK) fail(std::string(what) + ": " + library_error(status));
}

void Connection::reopen_channel() {
  amqp_channel_close_ok_t ok{};
  amqp_send_method(state_, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
  amqp_channel_open(state_, 1);
  amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
  if (r.reply_type != AMQP_RESPONSE_NORMAL) fail("cannot reopen the channel");
  bool had_confirms = confirms_;
  confirms_ = false;
  next_seq_ = 1;
  ++channel_epoch_;
  if (had_confirms) enable_confirms();
}

void Connection::check_reply(const amqp_rpc_reply_t& r, std::string_view what) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      fail(std::string(what) + ": no reply");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      fail(std::string(what) + ": " + library_error(r.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        auto* c = static_cast<amqp_channel_close_t*>(r.reply.decoded);
        std::string why =
            std::string(what) + ": " + std::to_string(c->reply_code) + " " + str(c->reply_text);
        reopen_channel();  // the connection survives a channel error
        throw BrokerError("AMQP broker " + ep_.redacted + ": " + why);
      }
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        auto* c = static_cast<amqp_connection_close_t*>(r.reply.decoded);
        amqp_connection_close_ok_t ok{};
        amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
        fail(std::string(what) + ": connection closed by the broker: " +
             std::to_string(c->reply_code) + " " + str(c->reply_text));
      }
      fail(std::string(what) + ": unexpected server method " + std::to_string(r.reply.id));
  }
  fail(std::string(what) + ": unknown reply type");
}

void Connection::handle_async_close(const amqp_frame_t& frame, std::string_view what) {
  amqp_rpc_reply_t r{};
  r.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
  r.reply = frame.payload.method;
  check_reply(r, what);  // throws
}

void Connection::enable_confirms() {
  if (confirms_) return;
  amqp_confirm_select(state_, 1);
  check_reply(amqp_get_rpc_reply(state_), "confirm.select");
  confirms_ = true;
  next_seq_ = 1;
}

void Connection::declare_exchange(std::string_view name, std::string_view type, bool durable,
                                  bool auto_delete) {
  amqp_exchange_declare(state_, 1, bytes(name), bytes(type), 0, durable, auto_delete, 0,
                        amqp_empty_table);
  check_reply(amqp_get_rpc_reply(state_), "exchange.declare '" + std::string(name) + "'");
}

std::optional<std::uint32_t> Connection::declare_queue(std::string_view name, const QueueSpec& spec,
                                                       bool passive) {
  TableBuilder tb;
  amqp_table_t args = tb.table(spec.arguments);
  auto* ok = amqp_queue_declare(state_, 1, bytes(name), passive, spec.durable, spec.exclusive,
                                spec.auto_delete, args);
  amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
  if (passive && r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
      static_cast<amqp_channel_close_t*>(r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
    reopen_channel();
    return std::nullopt;
  }
  check_reply(r, "queue.declare '" + std::string(name) + "'");
  return ok ? ok->message_count : 0;
}

void Connection::bind_queue(std::string_view queue, std::string_view exchange,
                            std::string_view key) {
  amqp_queue_bind(state_, 1, bytes(queue), bytes(exchange), bytes(key), amqp_empty_table);
  check_reply(amqp_get_rpc_reply(state_),
              "queue.bind '" + std::string(queue) + "' to '" + std::string(exchange) + "'");
}

std::uint32_t Connection::purge_queue(std::string_view queue) {
  auto* ok = amqp_queue_purge(state_, 1, bytes(queue));
  check_reply(amqp_get_rpc_reply(state_), "queue.purge '" + std::string(queue) + "'");
  return ok ? ok->message_count : 0;
}

void Connection::delete_queue(std::string_view queue) {
  amqp_queue_delete(state_, 1, bytes(queue), 0, 0);
  check_reply(amqp_get_rpc_reply(state_), "queue.delete '" + std::string(queue) + "'");
}

std::uint64_t Connection::publish(std::string_view exchange, std::string_view routing_key,
                                  const Message& m, bool mandatory) {
  TableBuilder tb;
  amqp_basic_properties_t p{};
  p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.delivery_mode = static_cast<uint8_t>(m.delivery_mode);
  auto set = [&](const std::string& v, amqp_flags_t flag, amqp_bytes_t& field) {
    if (v.empty()) return;
    p._flags |= flag;
    field = bytes(v);
  };
  set(m.content_type, AMQP_BASIC_CONTENT_TYPE_FLAG, p.content_type);
  set(m.content_encoding, AMQP_BASIC_CONTENT_ENCODING_FLAG, p.content_encoding);
  set(m.correlation_id, AMQP_BASIC_CORRELATION_ID_FLAG, p.correlation_id);
  set(m.reply_to, AMQP_BASIC_REPLY_TO_FLAG, p.reply_to);
  set(m.expiration, AMQP_BASIC_EXPIRATION_FLAG, p.expiration);
  if (m.priority) {
    p._flags |= AMQP_BASIC_PRIORITY_FLAG;
    p.priority = static_cast<uint8_t>(*m.priority);
  }
  if (m.headers.is_object() && !m.headers.empty()) {
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers = tb.table(m.headers);
  }
  int status = amqp_basic_publish(state_, 1, bytes(exchange), bytes(routing_key), mandatory, 0, &p,
                                  bytes(m.body));
  check_status(status, "basic.publish to '" + std::string(routing_key) + "'");
  return next_seq_++;
}

std::optional<ConfirmEvent> Connection::next_confirm(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    amqp_maybe_release_buffers(state_);  // what the last event pointed to was copied
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    amqp_frame_t frame;
    timeval tv = to_timeval(left);
    int status = amqp_simple_wait_frame_noblock(state_, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
    check_status(status, "waiting for publisher confirms");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    ConfirmEvent e;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        e.tag = m->delivery_tag;
        e.multiple = m->multiple;
        return e;
      }
      case AMQP_BASIC_NACK_METHOD: {
        auto* m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
        e.kind = ConfirmEvent::Kind::nack;
        e.tag = m->delivery_tag;
        e.multiple = m->multiple;
        return e;
      }
      case AMQP_BASIC_RETURN_METHOD: {
        auto* m = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
        e.kind = ConfirmEvent::Kind::returned;
        e.why = std::to_string(m->reply_code) + " " + str(m->reply_text);
        amqp_message_t msg;
        check_reply(amqp_read_message(state_, 1, &msg, 0), "reading a returned message");
        if (msg.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG)
          e.task_id = str(msg.properties.correlation_id);
        amqp_destroy_message(&msg);
        return e;
      }
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        handle_async_close(frame, "waiting for publisher confirms");
        break;
      default:
        break;
    }
  }
}

void Connection::qos(std::uint16_t prefetch_count) {
  amqp_basic_qos(state_, 1, 0, prefetch_count, 0);
  check_reply(amqp_get_rpc_reply(state_), "basic.qos");
}

std::string Connection::consume(std::string_view queue, bool no_ack, bool exclusive) {
  auto* ok = amqp_basic_consume(state_, 1, bytes(queue), amqp_empty_bytes, 0, no_ack, exclusive,
                                amqp_empty_table);
  check_reply(amqp_get_rpc_reply(state_), "basic.consume '" + std::string(queue) + "'");
  return ok ? str(ok->consumer_tag) : std::string();
}

void Connection::cancel(std::string_view consumer_tag) {
  amqp_basic_cancel(state_, 1, bytes(consumer_tag));
  check_reply(amqp_get_rpc_reply(state_), "basic.cancel");
}

std::optional<Received> Connection::next_delivery(std::chrono::milliseconds timeout) {
  amqp_maybe_release_buffers(state_);
  amqp_envelope_t env;
  timeval tv = to_timeval(timeout);
  amqp_rpc_reply_t r = amqp_consume_message(state_, &env, &tv, 0);
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT)
    return std::nullopt;
  if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
      r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
    // Not a delivery: a close, a server-side consumer cancel, ...
    amqp_frame_t frame;
    timeval zero{0, 0};
    int status = amqp_simple_wait_frame_noblock(state_, &frame, &zero);
    if (status == AMQP_STATUS_TIMEOUT) return std::nullopt;
    check_status(status, "reading a frame");
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
         frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD))
      handle_async_close(frame, "consuming");
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)
      fail("the broker cancelled a consumer (queue deleted?)");
    return std::nullopt;
  }
  check_reply(r, "consuming");
  Received out;
  out.message = read_properties(env.message.properties, env.message.body);
  out.delivery_tag = env.delivery_tag;
  out.redelivered = env.redelivered;
  out.exchange = str(env.exchange);
  out.routing_key = str(env.routing_key);
  out.consumer_tag = str(env.consumer_tag);
  amqp_destroy_envelope(&env);
  return out;
}

std::optional<Received> Connection::get(std::string_view queue) {
  amqp_rpc_reply_t r = amqp_basic_get(state_, 1, bytes(queue), 0);
  check_reply(r, "basic.get '" + std::string(queue) + "'");
  if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
  auto* ok = static_cast<amqp_basic_get_ok_t*>(r.reply.decoded);
  Received out;
  out.delivery_tag = ok->delivery_tag;
  out.redelivered = ok->redelivered;
  out.exchange = str(ok->exchange);
  out.routing_key = str(ok->routing_key);
  amqp_message_t msg;
  check_reply(amqp_read_message(state_, 1, &msg, 0),
              "reading a message of '" + std::string(queue) + "'");
  out.message = read_properties(msg.properties, msg.body);
  amqp_destroy_message(&msg);
  amqp_maybe_release_buffers(state_);
  return out;
}

void Connection::ack(std::uint64_t tag, bool multiple) {
  check_status(amqp_basic_ack(state_, 1, tag, multiple), "basic.ack");
}

void Connection::reject(std::uint64_t tag, bool requeue) {
  check_status(amqp_basic_reject(state_, 1, tag, requeue), "basic.reject");
}

void Connection::nack(std::uint64_t tag, bool multiple, bool requeue) {
  check_status(amqp_basic_nack(state_, 1, tag, multiple, requeue), "basic.nack");
}

}  // namespace celeriac::tq::amqp::detail
