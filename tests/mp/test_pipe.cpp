#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "celeriac/mp.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

TEST(Pipe, DuplexMessagesKeepTheirBoundaries) {
  auto [a, b] = mp::Pipe();
  a.send_bytes("hello");
  a.send_bytes("");
  a.send_bytes(std::string(200000, 'x'), 5s);  // larger than the socket buffer? b reads below
  EXPECT_EQ(b.recv_bytes(5s), "hello");
  EXPECT_EQ(b.recv_bytes(5s), "");
  EXPECT_EQ(b.recv_bytes(5s).size(), 200000u);
  b.send(std::map<std::string, int>{{"k", 1}});
  auto m = a.recv<std::map<std::string, int>>(5s);
  EXPECT_EQ(m.at("k"), 1);
}

TEST(Pipe, Timeouts) {
  auto [a, b] = mp::Pipe();
  EXPECT_FALSE(b.poll(10ms));
  EXPECT_THROW(b.recv_bytes(20ms), TimeoutError);
  // Nobody reads: the socket buffer fills and send times out.
  std::string big(1 << 20, 'y');
  EXPECT_THROW(
      {
        for (int i = 0; i < 64; ++i) a.send_bytes(big, 50ms);
      },
      TimeoutError);
}

TEST(Pipe, ClosedEnds) {
  auto [a, b] = mp::Pipe();
  a.send(42);
  a.close();
  EXPECT_TRUE(a.closed());
  EXPECT_THROW(a.send(1), mp::ConnectionClosed);
  EXPECT_TRUE(b.poll(1s));
  EXPECT_EQ(b.recv<int>(1s), 42);  // what was sent before the close is still read
  EXPECT_THROW(b.recv<int>(1s), mp::ConnectionClosed);
  EXPECT_THROW(b.send(1), mp::ConnectionClosed);
  mp::Connection none;
  EXPECT_THROW(none.recv_bytes(), mp::ConnectionClosed);
}

TEST(Pipe, WrongTypeIsASerializationError) {
  auto [a, b] = mp::Pipe();
  a.send(std::string("text"));
  EXPECT_THROW(b.recv<std::vector<int>>(1s), mp::SerializationError);
}

TEST(Pipe, OneWay) {
  auto [r, w] = mp::Pipe(false);
  w.send(7);
  EXPECT_EQ(r.recv<int>(1s), 7);
  EXPECT_THROW(r.send(1), InvalidStateError);
  EXPECT_THROW(w.recv<int>(10ms), InvalidStateError);
}

void echo_twice(mp::Connection c) {
  for (int i = 0; i < 2; ++i) {
    auto s = c.recv<std::string>();
    c.send(s + s);
  }
}

TEST(Pipe, TalksToAChildProcess) {
  auto [mine, theirs] = mp::Pipe();
  mp::Process p(&echo_twice, theirs);
  p.start();
  theirs.close();
  mine.send(std::string("ab"));
  EXPECT_EQ(mine.recv<std::string>(10s), "abab");
  mine.send(std::string("c"));
  EXPECT_EQ(mine.recv<std::string>(10s), "cc");
  EXPECT_TRUE(p.join(10s));
  EXPECT_EQ(p.exitcode(), 0);
  // The child exited: its end is closed.
  EXPECT_THROW(mine.recv<std::string>(10s), mp::ConnectionClosed);
}

TEST(Pipe, CarriesSharedArrays) {
  auto [a, b] = mp::Pipe();
  mp::SharedArray<int> arr(100);
  arr[5] = 55;
  a.send(arr);
  auto got = b.recv<mp::SharedArray<int>>(1s);
  EXPECT_EQ(got.size(), 100u);
  EXPECT_EQ(got[5], 55);
  got[6] = 66;
  EXPECT_EQ(arr[6], 66);
}
