#include "celeriac/redis/connection.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "celeriac/aio/detail/tls_session.hpp"
#include "celeriac/aio/tls.hpp"
#include "celeriac/redis/detail/lazy_reader.hpp"
#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- Pipeline

void Pipeline::add_argv(size_t argc, const char** argv, const size_t* lens) {
  char* cmd = nullptr;
  int len = redisFormatCommandArgv(&cmd, static_cast<int>(argc), argv, lens);
  if (len < 0 || cmd == nullptr) throw std::bad_alloc();
  buffer_.append(cmd, static_cast<size_t>(len));
  redisFreeCommand(cmd);
  ++count_;
}

Pipeline& Pipeline::add(std::initializer_list<std::string_view> args) {
  if (args.size() == 0) throw std::invalid_argument("Redis command with no arguments");
  const char* argv[16];
  size_t lens[16];
  std::vector<const char*> vargv;
  std::vector<size_t> vlens;
  const char** pa = argv;
  size_t* pl = lens;
  if (args.size() > 16) {
    vargv.resize(args.size());
    vlens.resize(args.size());
    pa = vargv.data();
    pl = vlens.data();
  }
  size_t i = 0;
  for (auto a : args) {
    pa[i] = a.data();
    pl[i] = a.size();
    ++i;
  }
  add_argv(args.size(), pa, pl);
  return *this;
}

Pipeline& Pipeline::add(const std::vector<std::string>& args) {
  if (args.empty()) throw std::invalid_argument("Redis command with no arguments");
  std::vector<const char*> argv(args.size());
  std::vector<size_t> lens(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    argv[i] = args[i].data();
    lens[i] = args[i].size();
  }
  add_argv(args.size(), argv.data(), lens.data());
  return *this;
}

// --------------------------------------------------------------- transport

namespace {

using aio::detail::TlsWant;

/// One aio::TlsContext per distinct rediss:// setting: the CA bundle and
/// certificates are loaded once, not per connection.
aio::TlsContext tls_context_for(const TlsSettings& t) {
  static std::mutex mu;
  static std::map<std::string, aio::TlsContext> cache;
  std::string key = std::to_string(static_cast<int>(t.cert_reqs)) + (t.check_hostname ? "1" : "0") +
                    '\0' + t.ca_certs + '\0' + t.certfile + '\0' + t.keyfile;
  std::lock_guard lk(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  aio::TlsOptions o;
  o.verify = t.cert_reqs == CertReqs::none       ? aio::TlsVerify::none
             : t.cert_reqs == CertReqs::optional ? aio::TlsVerify::optional
                                                 : aio::TlsVerify::required;
  o.check_hostname = t.check_hostname;
  o.ca_file = t.ca_certs;
  o.cert_file = t.certfile;
  o.key_file = t.keyfile;
  o.handshake_timeout.reset();  // the connection's deadline bounds it
  return cache.emplace(key, aio::TlsContext::client(std::move(o))).first->second;
}

/// aio's TLS errors as the Redis layer's, naming the server (never the password).
[[noreturn]] void rethrow_tls(const std::string& who) {
  try {
    throw;
  } catch (const aio::TlsError& e) {
    throw TlsError("Redis " + who + ": " + e.what());
  } catch (const aio::OSError& e) {
    throw ConnectionError("Redis " + who + ": " + e.what());
  }
}

/// The socket half: connect with a deadline, TLS when asked, write all, read
/// some. The only part that would change when moving onto aio streams.
class Socket {
 public:
  Socket() = default;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  void connect(const Url& url, Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    std::string port = std::to_string(url.port);
    int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0)
      throw ConnectionError("Redis " + url.address() +
                            ": cannot resolve host: " + ::gai_strerror(rc));
    std::string last = "no address";
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      int fd =
          ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
      if (fd < 0) {
        last = std::strerror(errno);
        continue;
      }
      int r = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
      if (r != 0 && errno == EINPROGRESS) {
        if (!wait_fd(fd, POLLOUT, deadline)) {
          ::close(fd);
          ::freeaddrinfo(res);
          throw TimeoutError("Redis " + url.address() + ": connect timed out");
        }
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        r = err == 0 ? 0 : -1;
        errno = err;
      }
      if (r != 0) {
        last = std::strerror(errno);
        ::close(fd);
        continue;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
      fd_ = fd;
      ::freeaddrinfo(res);
      return;
    }
    ::freeaddrinfo(res);
    throw ConnectionError("Redis " + url.address() + ": cannot connect: " + last);
  }

  /// The TLS handshake over the connected socket (rediss://).
  void start_tls(const Url& url, Clock::time_point deadline, const std::string& who) {
    try {
      tls_ = std::make_unique<aio::detail::TlsSession>(tls_context_for(url.tls_settings), fd_,
                                                       url.host, url.address());
      for (;;) {
        TlsWant want = tls_->handshake();
        if (want == TlsWant::none) return;
        if (!wait_fd(fd_, want == TlsWant::write ? POLLOUT : POLLIN, deadline))
          throw TimeoutError("Redis " + who + ": TLS handshake timed out");
      }
    } catch (const TimeoutError&) {
      throw;
    } catch (const std::exception&) {
      rethrow_tls(who);
    }
  }

  /// Writes everything or throws.
  void write_all(const char* data, size_t len, Clock::time_point deadline, const std::string& who) {
    if (tls_) return write_all_tls(data, len, deadline, who);
    while (len > 0) {
      ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
      if (n > 0) {
        data += n;
        len -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!wait_fd(fd_, POLLOUT, deadline))
          throw TimeoutError("Redis " + who + ": write timed out");
        continue;
      }
      throw ConnectionError("Redis " + who + ": write failed: " +
                            (n == 0 ? "connection closed" : std::strerror(errno)));
    }
  }

  /// Reads at least one byte; returns 0 on timeout; throws on EOF/error.
  size_t read_some(char* buf, size_t cap, Clock::time_point deadline, const std::string& who) {
    if (tls_) return read_some_tls(buf, cap, deadline, who);
    for (;;) {
      ssize_t n = ::recv(fd_, buf, cap, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n == 0) throw ConnectionError("Redis " + who + ": connection closed by the server");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!wait_fd(fd_, POLLIN, deadline)) return 0;
        continue;
      }
      throw ConnectionError("Redis " + who + ": read failed: " + std::strerror(errno));
    }
  }

  bool is_open() const { return fd_ >= 0; }
  void close() {
    if (tls_) tls_->shutdown();  // close_notify, best effort
    tls_.reset();
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  // OpenSSL asks to be called again once the fd is readable or writable.
  void write_all_tls(const char* data, size_t len, Clock::time_point deadline,
                     const std::string& who) {
    while (len > 0) {
      aio::detail::TlsIo io;
      try {
        io = tls_->write(data, len);
      } catch (const std::exception&) {
        rethrow_tls(who);
      }
      if (io.want == TlsWant::none) {
        data += io.bytes;
        len -= io.bytes;
      } else if (!wait_fd(fd_, io.want == TlsWant::read ? POLLIN : POLLOUT, deadline)) {
        throw TimeoutError("Redis " + who + ": write timed out");
      }
    }
  }

  size_t read_some_tls(char* buf, size_t cap, Clock::time_point deadline, const std::string& who) {
    for (;;) {
      aio::detail::TlsIo io;
      try {
        io = tls_->read(buf, cap);
      } catch (const std::exception&) {
        rethrow_tls(who);
      }
      if (io.want == TlsWant::none) return io.bytes;
      if (io.want == TlsWant::eof)
        throw ConnectionError("Redis " + who + ": connection closed by the server");
      if (!wait_fd(fd_, io.want == TlsWant::write ? POLLOUT : POLLIN, deadline)) return 0;
    }
  }

  static bool wait_fd(int fd, short events, Clock::time_point deadline) {
    for (;;) {
      auto now = Clock::now();
      long long ms = 0;
      if (deadline > now) {
        ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
        if (ms > 1 << 30) ms = 1 << 30;
      }
      pollfd p{fd, events, 0};
      int r = ::poll(&p, 1, static_cast<int>(ms));
      if (r > 0) return true;  // ready, or an error the next call reports
      if (r == 0) return false;
      if (errno != EINTR) return true;
    }
  }
  int fd_ = -1;
  std::unique_ptr<aio::detail::TlsSession> tls_;
};

}  // namespace

// -------------------------------------------------------------- Connection

struct Connection::Impl {
  Url url;
  ConnectOptions opts;
  std::string who;  // masked URL, for messages
  Socket sock;
  redisReader* reader = nullptr;
  char buf[16384];

  ~Impl() {
    if (reader) redisReaderFree(reader);
  }

  void fail() { sock.close(); }

  void check_open() const {
    if (!sock.is_open()) throw ConnectionError("Redis " + who + ": connection is closed");
  }

  void write(const std::string& bytes, Clock::time_point deadline) {
    check_open();
    try {
      sock.write_all(bytes.data(), bytes.size(), deadline, who);
    } catch (...) {
      fail();
      throw;
    }
  }

  /// Pops a buffered reply, if any.
  std::optional<Reply> buffered() {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK) {
      std::string err = reader->errstr;
      fail();
      throw ProtocolError("Redis " + who + ": protocol error: " + err);
    }
    if (!raw) return std::nullopt;
    auto* r = static_cast<redisReply*>(raw);
    Reply out = detail::reply_from_hiredis(r);
    freeReplyObject(r);
    return out;
  }

  std::optional<Reply> read(Clock::time_point deadline, bool allow_timeout) {
    if (auto r = buffered()) return r;
    check_open();
    for (;;) {
      size_t n = 0;
      try {
        n = sock.read_some(buf, sizeof buf, deadline, who);
      } catch (...) {
        fail();
        throw;
      }
      if (n == 0) {
        if (allow_timeout) return std::nullopt;
        fail();
        throw TimeoutError("Redis " + who + ": no reply within the timeout");
      }
      if (redisReaderFeed(reader, buf, n) != REDIS_OK) {
        std::string err = reader->errstr;
        fail();
        throw ProtocolError("Redis " + who + ": protocol error: " + err);
      }
      if (auto r = buffered()) return r;
    }
  }
};

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

Connection Connection::connect(std::string_view url, ConnectOptions opts) {
  return connect(Url::parse(url), opts);
}

Connection Connection::connect(const Url& url, ConnectOptions opts) {
  auto impl = std::make_unique<Impl>();
  impl->url = url;
  impl->opts = opts;
  impl->who = url.str();
  impl->reader = detail::make_lazy_reader();  // no up-front allocation for a declared "*N"
  if (!impl->reader) throw std::bad_alloc();
  auto deadline = Clock::now() + opts.connect_timeout;
  impl->sock.connect(url, deadline);
  if (url.tls) impl->sock.start_tls(url, deadline, impl->who);
  Connection c(std::move(impl));
  Pipeline p;
  if (!url.password.empty()) {
    if (url.username.empty())
      p.add({"AUTH", url.password});
    else
      p.add({"AUTH", url.username, url.password});
  }
  if (url.db != 0) p.add({"SELECT", std::to_string(url.db)});
  if (!p.empty()) {
    c.impl_->write(p.bytes(), deadline);
    for (size_t i = 0; i < p.size(); ++i) {
      auto r = c.impl_->read(deadline, false);
      if (r->is_error()) {
        c.close();
        throw ConnectionError("Redis " + c.describe() + ": " +
                              (i == 0 && !url.password.empty() ? "AUTH" : "SELECT") +
                              " failed: " + r->str());
      }
    }
  }
  return c;
}

Reply Connection::command(std::initializer_list<std::string_view> args) {
  return command_timeout(impl_->opts.io_timeout, args);
}

Reply Connection::command_timeout(Duration timeout, std::initializer_list<std::string_view> args) {
  Pipeline p;
  p.add(args);
  auto deadline = Clock::now() + timeout;
  impl_->write(p.bytes(), deadline);
  Reply r = *impl_->read(deadline, false);
  if (r.is_error())
    throw ReplyError("Redis " + impl_->who + ": " + std::string(*args.begin()) + ": " + r.str());
  return r;
}

Reply Connection::command(const std::vector<std::string>& args) {
  Pipeline p;
  p.add(args);
  auto deadline = Clock::now() + impl_->opts.io_timeout;
  impl_->write(p.bytes(), deadline);
  Reply r = *impl_->read(deadline, false);
  if (r.is_error()) throw ReplyError("Redis " + impl_->who + ": " + args[0] + ": " + r.str());
  return r;
}

std::vector<Reply> Connection::execute(const Pipeline& p) {
  std::vector<Reply> out;
  if (p.empty()) return out;
  out.reserve(p.size());
  auto deadline = Clock::now() + impl_->opts.io_timeout;
  impl_->write(p.bytes(), deadline);
  for (size_t i = 0; i < p.size(); ++i) out.push_back(*impl_->read(deadline, false));
  return out;
}

std::optional<std::vector<Reply>> Connection::transaction(const Pipeline& p) {
  Pipeline wrapped;
  wrapped.add({"MULTI"});
  std::string bytes = wrapped.bytes() + p.bytes();
  wrapped.clear();
  wrapped.add({"EXEC"});
  bytes += wrapped.bytes();
  auto deadline = Clock::now() + impl_->opts.io_timeout;
  impl_->write(bytes, deadline);
  std::string queue_error;
  for (size_t i = 0; i < p.size() + 1; ++i) {  // +OK for MULTI, +QUEUED for each
    Reply r = *impl_->read(deadline, false);
    if (r.is_error() && queue_error.empty()) queue_error = r.str();
  }
  Reply exec = *impl_->read(deadline, false);
  if (exec.is_error())
    throw ReplyError("Redis " + impl_->who + ": EXEC: " + exec.str() +
                     (queue_error.empty() ? "" : " (" + queue_error + ")"));
  if (exec.is_nil()) return std::nullopt;
  return exec.elements();
}

void Connection::send(const Pipeline& p) {
  impl_->write(p.bytes(), Clock::now() + impl_->opts.io_timeout);
}

std::optional<Reply> Connection::read_reply(std::optional<Duration> timeout, bool allow_timeout) {
  return impl_->read(Clock::now() + timeout.value_or(impl_->opts.io_timeout), allow_timeout);
}

bool Connection::reply_buffered() {
  // hiredis has no peek; a reply taken here would be lost, so only report
  // whether unparsed bytes are waiting in the reader
  return impl_->reader->len > impl_->reader->pos;
}

bool Connection::is_open() const {
  return impl_ && impl_->sock.is_open();
}
void Connection::close() {
  if (impl_) impl_->sock.close();
}
std::string Connection::describe() const {
  return impl_ ? impl_->who : "redis (moved-from)";
}
const Url& Connection::url() const {
  return impl_->url;
}
const ConnectOptions& Connection::options() const {
  return impl_->opts;
}

// ----------------------------------------------------------------- Backoff

Duration Backoff::delay(int attempt) const {
  Duration d = initial;
  for (int i = 0; i < attempt && d < max; ++i) d *= 2;
  return d < max ? d : max;
}

Connection connect_with_retry(const Url& url, Clock::time_point deadline, ConnectOptions opts,
                              Backoff backoff) {
  for (int attempt = 0;; ++attempt) {
    try {
      auto left = deadline - Clock::now();
      ConnectOptions o = opts;
      if (left < o.connect_timeout && left > Duration::zero()) o.connect_timeout = left;
      return Connection::connect(url, o);
    } catch (const ReplyError&) {
      throw;
    } catch (const TlsError&) {
      throw;  // a refused certificate stays refused
    } catch (const ConnectionError& e) {
      // AUTH/SELECT rejections are not going to get better by retrying
      if (std::string_view(e.what()).find(" failed: ") != std::string_view::npos) throw;
      if (Clock::now() + backoff.delay(attempt) >= deadline) throw;
    } catch (const TimeoutError&) {
      if (Clock::now() + backoff.delay(attempt) >= deadline) throw;
    }
    std::this_thread::sleep_for(backoff.delay(attempt));
  }
}

}  // namespace celeriac::redis
