// UDP datagram endpoints: echo over IPv4 and IPv6, connected endpoints,
// ICMP "port unreachable" as ConnectionRefusedError, truncation, Unix
// datagram sockets, cancellation of a pending receive, close under a
// waiting receiver, and bad arguments.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "aio_test_util.hpp"
#include "celeriac/aio/gather.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/timeout.hpp"
#include "celeriac/aio/udp.hpp"

using namespace celeriac;
using namespace celeriac::aio::testing;
using namespace std::chrono_literals;

namespace {

// Answers each datagram with its upper-cased payload, `count` times.
aio::Task<void> upper_echo(aio::DatagramEndpoint ep, int count) {
  for (int i = 0; i < count; ++i) {
    aio::Datagram d = co_await ep.recvfrom();
    for (char& c : d.data) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    co_await ep.sendto(d.data, d.from);
  }
}

aio::Task<void> echo_round_trip(std::string host) {
  auto server = aio::create_datagram_endpoint(aio::SocketAddress::parse(host, 0));
  EXPECT_NE(server.sockname().port(), 0);
  auto serving = aio::spawn(upper_echo(server, 3));
  auto client = aio::create_datagram_endpoint(aio::SocketAddress::parse(host, 0));
  static const char* const kWords[] = {"one", "two", "three"};
  for (std::string word : kWords) {
    co_await client.sendto(word, server.sockname());
    aio::Datagram d = co_await aio::wait_for(client.recvfrom(), 10s);
    for (char& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(d.data, word);
    EXPECT_EQ(d.from, server.sockname());
    EXPECT_FALSE(d.truncated);
  }
  co_await serving;
  client.close();
  server.close();
}

}  // namespace

TEST(AioIoUdp, EchoIpv4) {
  aio::run(echo_round_trip("127.0.0.1"));
}

TEST(AioIoUdp, EchoIpv6) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "no IPv6 loopback on this host";
  aio::run(echo_round_trip("::1"));
}

TEST(AioIoUdp, ConnectedEndpointByNameAndRefusedPeer) {
  auto main = []() -> aio::Task<void> {
    auto server = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    auto serving = aio::spawn(upper_echo(server, 1));
    auto client =
        co_await aio::create_datagram_endpoint("", 0, "localhost", server.sockname().port());
    EXPECT_EQ(client.peername().port(), server.sockname().port());
    co_await client.send("ping");
    EXPECT_EQ(co_await aio::wait_for(client.recv(), 10s), "PING");
    co_await serving;
    // Nobody listens any more: the ICMP port unreachable comes back as
    // ConnectionRefusedError on the connected endpoint.
    server.close();
    bool refused = false;
    try {
      co_await client.send("anyone?");
      co_await aio::wait_for(client.recv(), 10s);
    } catch (const aio::ConnectionRefusedError& e) {
      refused = true;
      EXPECT_NE(std::string(e.what()).find(client.peername().to_string()), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(refused);
  };
  aio::run(main());
}

TEST(AioIoUdp, TruncatedDatagramIsFlagged) {
  auto main = []() -> aio::Task<void> {
    auto a = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    auto b = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    co_await a.sendto(std::string(1000, 'x'), b.sockname());
    aio::Datagram d = co_await aio::wait_for(b.recvfrom(10), 10s);
    EXPECT_EQ(d.data, std::string(10, 'x'));
    EXPECT_TRUE(d.truncated);
    // An empty datagram is a datagram too.
    co_await a.sendto("", b.sockname());
    d = co_await aio::wait_for(b.recvfrom(), 10s);
    EXPECT_EQ(d.data, "");
    EXPECT_FALSE(d.truncated);
  };
  aio::run(main());
}

TEST(AioIoUdp, UnixDatagramSockets) {
  auto main = []() -> aio::Task<void> {
    std::string name = "@celeriac-udp-test-" + std::to_string(::getpid());
    auto server = aio::create_datagram_endpoint(aio::SocketAddress::unix_path(name));
    auto serving = aio::spawn(upper_echo(server, 1));
    auto client = aio::create_datagram_endpoint(aio::SocketAddress::unix_path(name + "-client"),
                                                aio::SocketAddress::unix_path(name));
    co_await client.send("unix");
    EXPECT_EQ(co_await aio::wait_for(client.recv(), 10s), "UNIX");
    co_await serving;
  };
  aio::run(main());
}

TEST(AioIoUdp, CancelledReceiveLeavesNoTraceAndCloseWakesTheReceiver) {
  auto main = []() -> aio::Task<void> {
    auto a = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    auto b = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    EXPECT_THROW(co_await aio::wait_for(b.recvfrom(), 10ms), TimeoutError);
    // The endpoint is usable after the cancelled receive.
    co_await a.sendto("after", b.sockname());
    EXPECT_EQ((co_await aio::wait_for(b.recvfrom(), 10s)).data, "after");
    // Two receivers at once: the second is refused.
    auto first = aio::spawn(b.recv());
    co_await aio::sleep(0s);
    auto second = aio::spawn(b.recv());
    EXPECT_THROW(co_await second, InvalidStateError);
    // Closing wakes the waiting receiver with EBADF.
    b.close();
    EXPECT_TRUE(b.is_closed());
    bool closed_error = false;
    try {
      co_await first;
    } catch (const aio::OSError& e) {
      closed_error = e.errno_value() == EBADF;
    }
    EXPECT_TRUE(closed_error);
    EXPECT_THROW(co_await b.sendto("x", a.sockname()), aio::OSError);
    b.close();  // idempotent
  };
  aio::run(main());
}

TEST(AioIoUdp, BadArguments) {
  auto main = []() -> aio::Task<void> {
    EXPECT_THROW(aio::create_datagram_endpoint(std::nullopt), std::invalid_argument);
    EXPECT_THROW(aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0),
                                               aio::SocketAddress::ipv6("::1", 9)),
                 std::invalid_argument);
    // Binding a port already bound.
    auto a = aio::create_datagram_endpoint(aio::SocketAddress::ipv4("127.0.0.1", 0));
    bool in_use = false;
    try {
      aio::create_datagram_endpoint(a.sockname());
    } catch (const aio::OSError& e) {
      in_use = e.errno_value() == EADDRINUSE;
      EXPECT_NE(std::string(e.what()).find(a.sockname().to_string()), std::string::npos);
    }
    EXPECT_TRUE(in_use);
    co_return;
  };
  aio::run(main());
  aio::DatagramEndpoint empty;
  EXPECT_THROW(empty.close(), InvalidStateError);
}
