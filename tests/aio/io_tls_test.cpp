// TLS streams with OpenSSL: round trips (open_connection(host, port, tls),
// start_server(..., tls), start_tls after a plaintext exchange), each
// refusal (untrusted CA, wrong host name, expired certificate, missing client
// certificate, handshake timeout), cancellation, client certificates, ALPN,
// large transfers, and bad settings. Certificates come from the openssl CLI
// at test time (tests/tq/support/tls_certs).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "celeriac/aio/event.hpp"
#include "celeriac/aio/server.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/streams.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/tls.hpp"
#include "tls_certs.hpp"

using namespace celeriac;
using namespace std::chrono_literals;
using celeriac::tq::test::TlsCerts;

namespace {

const TlsCerts& certs() {
  static TlsCerts c;
  return c;
}

// (Overloads, not default arguments: g++ 12 frees a default argument's
// temporary twice when the call sits inside a co_await expression.)
aio::TlsContext server_ctx(const tq::test::CertPair& pair, aio::TlsOptions o) {
  o.cert_file = pair.cert.string();
  o.key_file = pair.key.string();
  return aio::TlsContext::server(std::move(o));
}
aio::TlsContext server_ctx(const tq::test::CertPair& pair) {
  return server_ctx(pair, aio::TlsOptions());
}

aio::TlsContext client_ctx(aio::TlsOptions o) {
  if (o.ca_file.empty() && o.ca_path.empty()) o.ca_file = certs().ca().string();
  return aio::TlsContext::client(std::move(o));
}
aio::TlsContext client_ctx() {
  return client_ctx(aio::TlsOptions());
}

// Echoes lines; records what TLS negotiated on the server side.
struct SeenByServer {
  int connections = 0;
  std::string alpn;
  std::string peer_subject;
};

aio::Task<void> echo(SeenByServer* seen, aio::StreamReader r, aio::StreamWriter w) {
  ++seen->connections;
  auto info = w.tls_info();
  seen->alpn = info.alpn;
  seen->peer_subject = info.peer_subject;
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

aio::Task<aio::Server> echo_server(aio::TlsContext tls, SeenByServer* seen) {
  aio::ConnectionHandler h = [seen](aio::StreamReader r, aio::StreamWriter w) {
    return echo(seen, std::move(r), std::move(w));
  };
  co_return co_await aio::start_server(std::move(h), "127.0.0.1", 0, std::move(tls));
}

// Two lines through the echo server, then EOF both ways.
aio::Task<std::vector<std::string>> round_trip(aio::Stream s) {
  std::vector<std::string> got;
  for (std::string line : {"hello\n", "w\xc3\xb6rld\n"}) {
    s.writer.write(line);
    co_await s.writer.drain();
    got.push_back(co_await s.reader.readline());
  }
  s.writer.write_eof();                     // TLS close_notify
  got.push_back(co_await s.reader.read());  // the server closes after our EOF
  s.writer.close();
  co_await s.writer.wait_closed();
  co_return got;
}

const std::vector<std::string> kEchoed = {"hello\n", "w\xc3\xb6rld\n", ""};

// A plain TCP server that accepts and answers nothing: reads until EOF and
// counts the bytes (a TLS client's ClientHello, then nothing).
struct Silent {
  aio::Event got_bytes;
  aio::Event saw_eof;
  std::size_t bytes = 0;
};

aio::Task<void> silent(Silent* s, aio::StreamReader r, aio::StreamWriter w) {
  for (;;) {
    std::string chunk = co_await r.read(4096);
    if (chunk.empty()) break;
    s->bytes += chunk.size();
    s->got_bytes.set();
  }
  s->saw_eof.set();
  w.close();
}

aio::Task<aio::Server> silent_server(Silent* s) {
  aio::ConnectionHandler h = [s](aio::StreamReader r, aio::StreamWriter w) {
    return silent(s, std::move(r), std::move(w));
  };
  co_return co_await aio::start_server(std::move(h), "127.0.0.1", 0);
}

// Connects with `client` to a server using `server_pair`; returns the error's
// what() ("" when the connection succeeded), rethrowing anything but E.
template <class E>
aio::Task<std::string> refusal(const tq::test::CertPair& server_pair, aio::TlsContext client,
                               std::string host = "localhost") {
  SeenByServer seen;
  auto server = co_await echo_server(server_ctx(server_pair), &seen);
  std::string what;
  try {
    auto s = co_await aio::open_connection(host, server.port(), std::move(client));
    s.writer.close();
  } catch (const E& e) {
    what = e.what();
  }
  server.close();
  co_await server.wait_closed();
  // The handler saw the connection only when it was not refused.
  EXPECT_EQ(seen.connections, what.empty() ? 1 : 0) << what;
  co_return what;
}

}  // namespace

TEST(AioTls, RoundTripVerifiesServerByHostName) {
  auto main = []() -> aio::Task<void> {
    SeenByServer seen;
    auto server = co_await echo_server(server_ctx(certs().server()), &seen);
    auto s = co_await aio::open_connection("localhost", server.port(), client_ctx());
    EXPECT_TRUE(s.writer.is_tls());
    auto info = s.writer.tls_info();
    EXPECT_EQ(info.version, "TLSv1.3");
    EXPECT_FALSE(info.cipher.empty());
    EXPECT_EQ(info.peer_subject, "CN=localhost");
    EXPECT_EQ(info.alpn, "");
    EXPECT_EQ(co_await round_trip(std::move(s)), kEchoed);
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(seen.connections, 1);
    EXPECT_EQ(seen.peer_subject, "");  // no client certificate asked for
  };
  aio::run(main());
}

TEST(AioTls, IpAddressHostAndCaDirectory) {
  auto main = []() -> aio::Task<void> {
    SeenByServer seen;
    auto server = co_await echo_server(server_ctx(certs().server()), &seen);
    aio::TlsOptions o;
    o.ca_path = certs().ca_dir().string();
    // The certificate names IP:127.0.0.1: checked as an address, no SNI.
    auto s = co_await aio::open_connection("127.0.0.1", server.port(), client_ctx(o));
    EXPECT_EQ(co_await round_trip(std::move(s)), kEchoed);
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioTls, UntrustedCaIsRefused) {
  auto main = []() -> aio::Task<void> {
    aio::TlsOptions o;
    o.ca_file = certs().other_ca().string();
    std::string what =
        co_await refusal<aio::CertificateUntrustedError>(certs().server(), client_ctx(o));
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_NE(what.find("localhost"), std::string::npos) << what;
    // The system trust store does not know our CA either.
    what = co_await refusal<aio::CertificateUntrustedError>(
        certs().server(), aio::TlsContext::client(aio::TlsOptions()));
    EXPECT_NE(what.find("unable to get local issuer certificate"), std::string::npos) << what;
  };
  aio::run(main());
}

TEST(AioTls, WrongHostNameIsRefusedUnlessCheckIsOff) {
  auto main = []() -> aio::Task<void> {
    std::string what =
        co_await refusal<aio::HostnameMismatchError>(certs().wrong_host(), client_ctx());
    EXPECT_NE(what.find("not valid for 'localhost'"), std::string::npos) << what;
    what = co_await refusal<aio::HostnameMismatchError>(certs().wrong_host(), client_ctx(),
                                                        "127.0.0.1");
    EXPECT_NE(what.find("'127.0.0.1'"), std::string::npos) << what;
    // check_hostname off: the chain is still verified, the name is not.
    aio::TlsOptions o;
    o.check_hostname = false;
    what = co_await refusal<aio::TlsError>(certs().wrong_host(), client_ctx(o));
    EXPECT_EQ(what, "");
  };
  aio::run(main());
}

TEST(AioTls, ExpiredCertificateIsRefused) {
  auto main = []() -> aio::Task<void> {
    std::string what =
        co_await refusal<aio::CertificateExpiredError>(certs().expired(), client_ctx());
    EXPECT_NE(what.find("certificate has expired"), std::string::npos) << what;
  };
  aio::run(main());
}

TEST(AioTls, VerifyNoneAcceptsAnyCertificate) {
  auto main = []() -> aio::Task<void> {
    aio::TlsOptions o;
    o.verify = aio::TlsVerify::none;
    o.ca_file = certs().other_ca().string();
    for (const auto* pair : {&certs().expired(), &certs().wrong_host()}) {
      std::string what = co_await refusal<aio::TlsError>(*pair, aio::TlsContext::client(o));
      EXPECT_EQ(what, "");
    }
  };
  aio::run(main());
}

TEST(AioTls, HandshakeTimeoutNamesThePeer) {
  auto main = []() -> aio::Task<void> {
    Silent silent_state;
    auto server = co_await silent_server(&silent_state);
    aio::TlsOptions o;
    o.handshake_timeout = 200ms;
    try {
      co_await aio::open_connection("localhost", server.port(), client_ctx(o));
      ADD_FAILURE() << "a handshake with a silent server completed";
    } catch (const TimeoutError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find("TLS handshake with localhost"), std::string::npos) << what;
      EXPECT_NE(what.find("timed out after 0.2 s"), std::string::npos) << what;
    }
    co_await silent_state.saw_eof.wait();  // the timed-out socket was closed
    EXPECT_GT(silent_state.bytes, 0u);     // after our ClientHello
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioTls, CancelledHandshakeClosesTheConnection) {
  auto main = []() -> aio::Task<void> {
    Silent silent_state;
    auto server = co_await silent_server(&silent_state);
    aio::TlsOptions o;
    o.handshake_timeout = std::nullopt;  // only cancellation ends it
    auto connecting = aio::spawn(aio::open_connection("localhost", server.port(), client_ctx(o)));
    co_await silent_state.got_bytes.wait();  // the ClientHello is out: mid-handshake
    EXPECT_FALSE(connecting.done());
    connecting.cancel();
    EXPECT_THROW(co_await connecting, CancelledError);
    co_await silent_state.saw_eof.wait();  // nothing dangling: the socket is closed

    // start_tls cancelled on an open stream: the stream is aborted.
    Silent second;
    auto server2 = co_await silent_server(&second);
    auto s = co_await aio::open_connection("127.0.0.1", server2.port());
    auto upgrading = aio::spawn(s.writer.start_tls(client_ctx(o), "localhost"));
    co_await second.got_bytes.wait();
    upgrading.cancel();
    EXPECT_THROW(co_await upgrading, CancelledError);
    EXPECT_TRUE(s.writer.is_closing());
    EXPECT_EQ(co_await s.reader.read(10), "");
    co_await second.saw_eof.wait();
    server.close();
    server2.close();
    co_await server.wait_closed();
    co_await server2.wait_closed();
  };
  aio::run(main());
}

TEST(AioTls, ClientCertificatesRequiredByTheServer) {
  auto main = []() -> aio::Task<void> {
    SeenByServer seen;
    aio::TlsOptions so;
    so.verify = aio::TlsVerify::required;
    so.ca_file = certs().ca().string();
    auto server = co_await echo_server(server_ctx(certs().server(), so), &seen);
    aio::TlsOptions co;
    co.cert_file = certs().client().cert.string();
    co.key_file = certs().client().key.string();
    auto s = co_await aio::open_connection("localhost", server.port(), client_ctx(co));
    EXPECT_EQ(co_await round_trip(std::move(s)), kEchoed);
    EXPECT_EQ(seen.connections, 1);
    EXPECT_EQ(seen.peer_subject, "CN=celeriac-test-client");

    // Without a client certificate the server refuses; in TLS 1.3 the client
    // learns it from the server's alert, at the latest on its first read.
    bool refused = false;
    try {
      auto bare = co_await aio::open_connection("localhost", server.port(), client_ctx());
      bare.writer.write("hello\n");
      co_await bare.writer.drain();
      co_await bare.reader.readline();
    } catch (const aio::TlsError& e) {
      refused = true;
      EXPECT_NE(std::string(e.what()).find("certificate required"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(refused);
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(seen.connections, 1);  // the refused client never reached the handler
  };
  aio::run(main());
}

TEST(AioTls, AlpnPicksTheServersPreference) {
  auto main = []() -> aio::Task<void> {
    SeenByServer seen;
    aio::TlsOptions so;
    so.alpn = {"http/1.1", "h2"};
    auto server = co_await echo_server(server_ctx(certs().server(), so), &seen);
    aio::TlsOptions co;
    co.alpn = {"h2", "http/1.1"};
    auto s = co_await aio::open_connection("localhost", server.port(), client_ctx(co));
    EXPECT_EQ(s.writer.tls_info().alpn, "http/1.1");
    EXPECT_EQ(co_await round_trip(std::move(s)), kEchoed);
    EXPECT_EQ(seen.alpn, "http/1.1");
    // No protocol in common: the connection goes on without ALPN.
    co.alpn = {"celeriac/1"};
    auto s2 = co_await aio::open_connection("localhost", server.port(), client_ctx(co));
    EXPECT_EQ(s2.writer.tls_info().alpn, "");
    EXPECT_EQ(co_await round_trip(std::move(s2)), kEchoed);
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

namespace {

// STARTTLS: a plaintext greeting, then TLS on the same connection.
aio::Task<void> starttls_handler(aio::TlsContext tls, aio::StreamReader r, aio::StreamWriter w) {
  EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
  w.write("OK\n");
  co_await w.start_tls(tls);
  std::string line = co_await r.readline();
  w.write("secure " + line);
  co_await w.drain();
  w.close();
}

}  // namespace

TEST(AioTls, StartTlsUpgradesAPlainStream) {
  auto main = []() -> aio::Task<void> {
    auto tls = server_ctx(certs().server());
    aio::ConnectionHandler h = [tls](aio::StreamReader r, aio::StreamWriter w) {
      return starttls_handler(tls, std::move(r), std::move(w));
    };
    auto server = co_await aio::start_server(std::move(h), "127.0.0.1", 0);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_FALSE(s.writer.is_tls());
    EXPECT_THROW(s.writer.tls_info(), InvalidStateError);
    s.writer.write("STARTTLS\n");
    EXPECT_EQ(co_await s.reader.readline(), "OK\n");
    co_await s.start_tls(client_ctx(), "localhost");
    EXPECT_TRUE(s.writer.is_tls());
    EXPECT_THROW(co_await s.writer.start_tls(client_ctx(), "localhost"), InvalidStateError);
    s.writer.write("ping\n");
    EXPECT_EQ(co_await s.reader.readline(), "secure ping\n");
    EXPECT_EQ(co_await s.reader.read(), "");
    s.writer.close();
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

namespace {

aio::Task<void> send_then_wait(aio::StreamReader r, aio::StreamWriter w) {
  w.write("early bytes\n");
  co_await r.read();
  w.close();
}

aio::Task<void> sink(std::size_t* total, aio::StreamReader r, aio::StreamWriter w) {
  std::string all = co_await r.read();
  *total = all.size();
  w.write(std::to_string(all.size()) + "\n");
  co_await w.drain();
  w.close();
}

}  // namespace

TEST(AioTls, StartTlsRefusesBufferedPlaintext) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await aio::start_server(send_then_wait, "127.0.0.1", 0);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    co_await s.reader.read_exactly(1);  // the rest of the line is buffered
    try {
      co_await s.start_tls(client_ctx(), "localhost");
      ADD_FAILURE() << "start_tls with buffered plaintext went on";
    } catch (const InvalidStateError& e) {
      EXPECT_NE(std::string(e.what()).find("unread bytes"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(s.writer.is_tls());
    EXPECT_EQ(co_await s.reader.readline(), "arly bytes\n");  // still a plain stream
    s.writer.close();
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioTls, LargeTransferWithBackPressure) {
  auto main = []() -> aio::Task<void> {
    std::size_t total = 0;
    aio::ConnectionHandler h = [&total](aio::StreamReader r, aio::StreamWriter w) {
      return sink(&total, std::move(r), std::move(w));
    };
    auto server =
        co_await aio::start_server(std::move(h), "127.0.0.1", 0, server_ctx(certs().server()));
    auto s = co_await aio::open_connection("localhost", server.port(), client_ctx());
    std::string block(256 * 1024, 'x');
    for (int i = 0; i < 32; ++i) {  // 8 MiB, far more than the socket buffers
      block[0] = static_cast<char>('a' + i);
      s.writer.write(block);
      co_await s.writer.drain();
    }
    s.writer.write_eof();
    EXPECT_EQ(co_await s.reader.readline(), std::to_string(32 * block.size()) + "\n");
    s.writer.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(total, 32 * block.size());
  };
  aio::run(main());
}

TEST(AioTls, BadSettingsNameWhatIsWrong) {
  aio::TlsOptions o;
  o.cert_file = "/nonexistent/server.pem";
  try {
    aio::TlsContext::server(o);
    ADD_FAILURE() << "a missing certificate file was accepted";
  } catch (const aio::TlsError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/server.pem"), std::string::npos) << e.what();
  }
  EXPECT_THROW(aio::TlsContext::server(aio::TlsOptions{}), aio::TlsError);  // no certificate
  o = {};
  o.cert_file = certs().server().cert.string();
  o.key_file = certs().client().key.string();  // not the certificate's key
  try {
    aio::TlsContext::server(o);
    ADD_FAILURE() << "a key that does not match was accepted";
  } catch (const aio::TlsError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("key values mismatch"), std::string::npos) << what;
    EXPECT_NE(what.find("client.key"), std::string::npos) << what;
  }
  o = {};
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(aio::TlsContext::client(o), aio::TlsError);
  o = {};
  o.alpn = {""};
  EXPECT_THROW(aio::TlsContext::client(o), std::invalid_argument);

  auto main = []() -> aio::Task<void> {
    EXPECT_THROW(co_await aio::open_connection("localhost", 1, server_ctx(certs().server())),
                 std::invalid_argument);
    EXPECT_THROW(co_await aio::open_connection("localhost", 1, aio::TlsContext{}),
                 std::invalid_argument);
    EXPECT_THROW(co_await aio::start_server(send_then_wait, "127.0.0.1", 0, client_ctx()),
                 std::invalid_argument);
  };
  aio::run(main());
}

TEST(AioTls, PlainClientAtATlsServerGetsNoService) {
  auto main = []() -> aio::Task<void> {
    SeenByServer seen;
    auto server = co_await echo_server(server_ctx(certs().server()), &seen);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    s.writer.write("GET / HTTP/1.0\r\n\r\n");
    std::string answer;
    try {
      answer = co_await s.reader.read();  // an alert, then EOF
    } catch (const aio::ConnectionResetError&) {
    }
    EXPECT_EQ(answer.find("GET"), std::string::npos);
    s.writer.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(seen.connections, 0);
  };
  aio::run(main());
}

namespace {

struct Holder {
  aio::StreamWriter writer;
  aio::Event connected;
};

aio::Task<void> hold(Holder* h, aio::StreamReader r, aio::StreamWriter w) {
  h->writer = w;
  h->connected.set();
  co_await r.read();  // until the client's EOF
  w.close();
}

}  // namespace

TEST(AioTls, CancelledReadLeavesTheTlsStreamUsable) {
  auto main = []() -> aio::Task<void> {
    Holder holder;
    aio::ConnectionHandler h = [&holder](aio::StreamReader r, aio::StreamWriter w) {
      return hold(&holder, std::move(r), std::move(w));
    };
    auto server =
        co_await aio::start_server(std::move(h), "127.0.0.1", 0, server_ctx(certs().server()));
    auto s = co_await aio::open_connection("localhost", server.port(), client_ctx());
    co_await holder.connected.wait();
    auto reading = aio::spawn(s.reader.read_exactly(5));
    co_await aio::sleep(20ms);  // let it park on the socket (nothing was sent)
    EXPECT_FALSE(reading.done());
    reading.cancel();
    EXPECT_THROW(co_await reading, CancelledError);
    // No registration or TLS state left behind: the next read gets the bytes.
    holder.writer.write("hello");
    EXPECT_EQ(co_await s.reader.read_exactly(5), "hello");
    s.writer.write_eof();
    EXPECT_EQ(co_await s.reader.read(), "");
    s.writer.close();
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}
