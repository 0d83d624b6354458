// Streams over TCP (IPv4/IPv6) and Unix sockets: round trips, the error
// paths (EOF mid-message, limits, resets, refused connections), drain
// back-pressure and cancellation of pending reads and connects.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "aio_test_util.hpp"
#include "celeriac/aio/server.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/streams.hpp"
#include "celeriac/aio/task.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

namespace {

aio::Task<void> echo_handler(aio::StreamReader r, aio::StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

aio::Task<std::vector<std::string>> echo_round_trip(aio::Server server, aio::Stream s) {
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    s.writer.write("line " + std::to_string(i) + "\n");
    co_await s.writer.drain();
    got.push_back(co_await s.reader.readline());
  }
  s.writer.write_eof();
  got.push_back(co_await s.reader.read());  // server closes after our EOF: ""
  EXPECT_TRUE(s.reader.at_eof());
  s.writer.close();
  co_await s.writer.wait_closed();
  server.close();
  co_await server.wait_closed();
  co_return got;
}

const std::vector<std::string> kEchoed = {"line 0\n", "line 1\n", "line 2\n", ""};

}  // namespace

TEST(AioIoStreams, EchoTcpIpv4) {
  auto main = []() -> aio::Task<std::vector<std::string>> {
    auto server = co_await aio::start_server(echo_handler, "127.0.0.1", 0);
    EXPECT_NE(server.port(), 0);
    EXPECT_EQ(server.sockets().size(), 1u);
    EXPECT_EQ(server.sockets().at(0).host(), "127.0.0.1");
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(s.writer.peername().port(), server.port());
    EXPECT_EQ(s.writer.sockname().host(), "127.0.0.1");
    co_return co_await echo_round_trip(server, std::move(s));
  };
  EXPECT_EQ(aio::run(main()), kEchoed);
}

TEST(AioIoStreams, EchoTcpIpv6) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback on this host";
  auto main = []() -> aio::Task<std::vector<std::string>> {
    auto server = co_await aio::start_server(echo_handler, "::1", 0);
    auto s = co_await aio::open_connection("::1", server.port());
    EXPECT_EQ(s.writer.peername().family(), aio::Family::ipv6);
    EXPECT_EQ(s.writer.peername().to_string(), "[::1]:" + std::to_string(server.port()));
    co_return co_await echo_round_trip(server, std::move(s));
  };
  EXPECT_EQ(aio::run(main()), kEchoed);
}

TEST(AioIoStreams, EchoUnixSocket) {
  std::string path = "/tmp/celeriac-io-test-" + std::to_string(::getpid()) + ".sock";
  auto main = [](std::string p) -> aio::Task<std::vector<std::string>> {
    auto server = co_await aio::start_unix_server(echo_handler, p);
    EXPECT_EQ(server.sockets().at(0).to_string(), "unix:" + p);
    auto s = co_await aio::open_unix_connection(p);
    co_return co_await echo_round_trip(server, std::move(s));
  };
  EXPECT_EQ(aio::run(main(path)), kEchoed);
  ::unlink(path.c_str());
}

TEST(AioIoStreams, EchoAbstractUnixSocket) {
  std::string name = "@celeriac-io-test-" + std::to_string(::getpid());
  auto main = [](std::string p) -> aio::Task<std::vector<std::string>> {
    auto server = co_await aio::start_unix_server(echo_handler, p);
    auto s = co_await aio::open_unix_connection(p);
    co_return co_await echo_round_trip(server, std::move(s));
  };
  EXPECT_EQ(aio::run(main(name)), kEchoed);
}

namespace {
// A server that sends `payload` and closes.
aio::Task<void> send_and_close(std::string payload, aio::StreamWriter w) {
  w.write(payload);
  w.close();
  co_await w.wait_closed();
}
aio::Task<aio::Server> sending_server(std::string payload) {
  // The handler is a plain function bound to the payload: no coroutine
  // lambda with captures (its frame would refer to the closure object).
  aio::ConnectionHandler h = [payload](aio::StreamReader, aio::StreamWriter w) {
    return send_and_close(payload, std::move(w));
  };
  co_return co_await aio::start_server(std::move(h), "127.0.0.1", 0);
}
}  // namespace

TEST(AioIoStreams, ReadExactlyEofMidMessage) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await sending_server("0123456789");
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await s.reader.read_exactly(4), "0123");
    try {
      co_await s.reader.read_exactly(100);
      ADD_FAILURE() << "read_exactly past EOF returned";
    } catch (const aio::IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), "456789");
      EXPECT_EQ(e.expected(), 100u);
      EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(s.reader.at_eof());
    EXPECT_EQ(co_await s.reader.read(10), "");
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioIoStreams, ReadUntilLimitAndIncomplete) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await sending_server(std::string(100, 'x') + "END" + "tail-without-sep");
    aio::StreamOptions opts;
    opts.limit = 50;
    auto s = co_await aio::open_connection("127.0.0.1", server.port(), std::nullopt, opts);
    try {
      co_await s.reader.read_until("END");
      ADD_FAILURE() << "read_until over the limit returned";
    } catch (const aio::LimitOverrunError& e) {
      EXPECT_GT(e.consumed(), 0u);
    }
    // The data is still there: a bigger read gets it.
    EXPECT_EQ(co_await s.reader.read_exactly(100), std::string(100, 'x'));
    EXPECT_EQ(co_await s.reader.read_until("END"), "END");
    try {
      co_await s.reader.read_until("END");
      ADD_FAILURE();
    } catch (const aio::IncompleteReadError& e) {
      EXPECT_EQ(e.partial(), "tail-without-sep");
    }
    EXPECT_THROW(co_await s.reader.read_until(""), std::invalid_argument);
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioIoStreams, ReadlineAtEofAndReadSizes) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await sending_server("a\nbc\nlast");
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await s.reader.readline(), "a\n");
    EXPECT_EQ(co_await s.reader.read(0), "");
    EXPECT_EQ(co_await s.reader.read(1), "b");
    EXPECT_EQ(co_await s.reader.readline(), "c\n");
    EXPECT_EQ(co_await s.reader.readline(), "last");
    EXPECT_EQ(co_await s.reader.readline(), "");
    EXPECT_TRUE(s.reader.at_eof());
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioIoStreams, PeerResetMidReadRaisesConnectionReset) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await aio::start_server(
        [](aio::StreamReader r, aio::StreamWriter w) -> aio::Task<void> {
          co_await r.read_exactly(5);  // the client's request
          w.write("partial");
          linger lg{1, 0};  // close with RST
          ::setsockopt(w.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
          w.abort();
        },
        "127.0.0.1", 0);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    s.writer.write("hello");
    co_await s.writer.drain();
    bool reset = false;
    try {
      // Asks for more than the server sends: the RST arrives mid-read.
      co_await s.reader.read_exactly(1000);
    } catch (const aio::ConnectionResetError& e) {
      reset = true;
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(server.port())),
                std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(reset);
    // Later reads report the same error; writes fail in drain().
    EXPECT_THROW(co_await s.reader.read(1), aio::ConnectionResetError);
    s.writer.write("more");
    EXPECT_THROW(co_await s.writer.drain(), aio::ConnectionError);
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioIoStreams, ConnectionRefusedNamesTheAddress) {
  // A port that was free a moment ago: nothing listens there.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  std::uint16_t port = ntohs(a.sin_port);
  auto main = [](std::uint16_t p) -> aio::Task<void> {
    try {
      co_await aio::open_connection("127.0.0.1", p);
      ADD_FAILURE() << "connected to a closed port";
    } catch (const aio::ConnectionRefusedError& e) {
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(p)), std::string::npos)
          << e.what();
      EXPECT_EQ(e.errno_value(), ECONNREFUSED);
    }
    EXPECT_THROW(co_await aio::open_unix_connection("/nonexistent/celeriac.sock"), aio::OSError);
  };
  aio::run(main(port));
}

namespace {
aio::Task<void> slow_reader(std::size_t* received, aio::StreamReader r) {
  for (;;) {
    co_await aio::sleep(2ms);  // a slow reader
    std::string chunk = co_await r.read(64 * 1024);
    if (chunk.empty()) break;
    *received += chunk.size();
  }
}
aio::Task<void> keep_writer(aio::StreamWriter* out, aio::StreamReader r, aio::StreamWriter w) {
  *out = w;
  co_await r.read();  // until the client closes
}
}  // namespace

TEST(AioIoStreams, DrainBackPressureWithSlowReader) {
  auto main = []() -> aio::Task<void> {
    std::size_t received = 0;
    aio::ConnectionHandler h = [&received](aio::StreamReader r, aio::StreamWriter) {
      return slow_reader(&received, std::move(r));
    };
    auto server = co_await aio::start_server(std::move(h), "127.0.0.1", 0);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    int small = 4096;
    ::setsockopt(s.writer.fd(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    s.writer.set_write_buffer_limits(64 * 1024, 16 * 1024);
    const std::string block(256 * 1024, 'z');
    std::size_t sent = 0;
    bool saw_backlog = false;
    for (int i = 0; i < 16; ++i) {
      s.writer.write(block);
      sent += block.size();
      if (s.writer.write_buffer_size() > 64 * 1024) saw_backlog = true;
      co_await s.writer.drain();
      // drain() returns only once the backlog is down to the low-water mark.
      EXPECT_LE(s.writer.write_buffer_size(), 16u * 1024);
    }
    EXPECT_TRUE(saw_backlog);
    s.writer.close();
    co_await s.writer.wait_closed();
    EXPECT_EQ(s.writer.write_buffer_size(), 0u);
    server.close();
    co_await server.wait_closed();  // waits for the handler: everything read
    EXPECT_EQ(received, sent);
  };
  aio::run(main());
}

TEST(AioIoStreams, CancelPendingReadLeavesStreamUsable) {
  auto main = []() -> aio::Task<void> {
    aio::StreamWriter server_writer;
    aio::ConnectionHandler h = [&server_writer](aio::StreamReader r, aio::StreamWriter w) {
      return keep_writer(&server_writer, std::move(r), std::move(w));
    };
    auto server = co_await aio::start_server(std::move(h), "127.0.0.1", 0);
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    auto reading = aio::spawn(s.reader.read_exactly(5));
    co_await aio::sleep(20ms);
    EXPECT_FALSE(reading.done());
    reading.cancel();
    EXPECT_THROW(co_await reading, CancelledError);
    // No registration left: a new read gets the data.
    server_writer.write("hello");
    EXPECT_EQ(co_await s.reader.read_exactly(5), "hello");
    s.writer.close();
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}

TEST(AioIoStreams, ConnectTimeoutAndCancel) {
  // A listener with a full backlog: the kernel drops further SYNs, so
  // connects hang until our timeout.
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(lfd, 0), 0);
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
    fillers.push_back(c);
  }
  std::uint16_t port = ntohs(a.sin_port);
  auto main = [](std::uint16_t p) -> aio::Task<bool> {
    bool hung = true;
    try {
      co_await aio::open_connection("127.0.0.1", p, 150ms);
      hung = false;
    } catch (const TimeoutError& e) {
      EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
    }
    if (!hung) co_return false;
    auto connecting = aio::spawn(aio::open_connection("127.0.0.1", p));
    co_await aio::sleep(30ms);
    EXPECT_FALSE(connecting.done());
    connecting.cancel();
    EXPECT_THROW(co_await connecting, CancelledError);
    co_return true;
  };
  bool hung = aio::run(main(port));
  for (int c : fillers) ::close(c);
  ::close(lfd);
  if (!hung) GTEST_SKIP() << "this kernel accepted connections past the backlog";
}

TEST(AioIoStreams, WriteAfterCloseAndEmptyHandles) {
  auto main = []() -> aio::Task<void> {
    auto server = co_await sending_server("");
    auto s = co_await aio::open_connection("127.0.0.1", server.port());
    s.writer.close();
    EXPECT_TRUE(s.writer.is_closing());
    EXPECT_THROW(s.writer.write("x"), InvalidStateError);
    co_await s.writer.wait_closed();
    EXPECT_EQ(co_await s.reader.read(5), "");  // closed stream reads EOF
    aio::StreamReader empty;
    EXPECT_THROW(empty.at_eof(), InvalidStateError);
    server.close();
    co_await server.wait_closed();
  };
  aio::run(main());
}
