// The Redis client (celeriac::redis) against a real redis-server.
#include <gtest/gtest.h>

#include <thread>

#include "celeriac/redis/connection.hpp"
#include "celeriac/redis/errors.hpp"
#include "celeriac/redis/pubsub.hpp"
#include "support/redis_server.hpp"

namespace r = celeriac::redis;
using celeriac::tq::test::RedisServer;
using namespace std::chrono_literals;

TEST(RedisUrl, ParsesEveryPart) {
  auto u = r::Url::parse("redis://:s%40cret@example.org:6390/3");
  EXPECT_EQ(u.host, "example.org");
  EXPECT_EQ(u.port, 6390);
  EXPECT_EQ(u.db, 3);
  EXPECT_EQ(u.password, "s@cret");
  EXPECT_EQ(u.username, "");
  EXPECT_EQ(u.str(), "redis://:***@example.org:6390/3");
  auto d = r::Url::parse("redis://");
  EXPECT_EQ(d.host, "127.0.0.1");
  EXPECT_EQ(d.port, 6379);
  EXPECT_EQ(d.db, 0);
  auto a = r::Url::parse("redis://bob:pw@[::1]:7000/0?visibility_timeout=10");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 7000);
  EXPECT_EQ(a.username, "bob");
  EXPECT_EQ(a.password, "pw");
}

TEST(RedisUrl, RejectsBadUrlsQuotingThem) {
  for (const char* bad :
       {"http://localhost", "redis://host:notaport/0", "redis://host:70000", "redis://host/abc",
        "redis://host/-1", "redis://[::1/0", "redis://:pw%2@host"}) {
    try {
      r::Url::parse(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const r::UrlError& e) {
      // quoted, except the password, which is masked
      std::string quoted = std::string(bad) == "redis://:pw%2@host" ? "redis://:***@host" : bad;
      EXPECT_NE(std::string(e.what()).find(quoted), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find("pw%2"), std::string::npos) << e.what();
    }
  }
}

TEST(RedisConnection, CommandsRepliesAndErrors) {
  RedisServer server;
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");
  EXPECT_EQ(c.command({"SET", "k", std::string("a\0b\r\nc", 6)}).str(), "OK");
  auto v = c.command({"GET", "k"});
  ASSERT_TRUE(v.is_string());
  EXPECT_EQ(v.str(), std::string("a\0b\r\nc", 6));  // binary-safe both ways
  EXPECT_TRUE(c.command({"GET", "missing"}).is_nil());
  EXPECT_EQ(c.command({"RPUSH", "l", "1", "2", "3"}).integer(), 3);
  auto l = c.command(std::vector<std::string>{"LRANGE", "l", "0", "-1"});
  ASSERT_EQ(l.size(), 3u);
  EXPECT_EQ(l[2].str(), "3");
  EXPECT_THROW(l[3], r::ProtocolError);
  EXPECT_THROW(l.integer(), r::ProtocolError);
  // an error reply throws ReplyError naming the command; the connection stays usable
  try {
    c.command({"LPUSH", "k", "x"});
    ADD_FAILURE() << "WRONGTYPE not reported";
  } catch (const r::ReplyError& e) {
    EXPECT_NE(std::string(e.what()).find("WRONGTYPE"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("LPUSH"), std::string::npos) << e.what();
  }
  EXPECT_THROW(c.command({"NOSUCHCOMMAND"}), r::ReplyError);
  EXPECT_TRUE(c.is_open());
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");
}

TEST(RedisConnection, PipelineReturnsRepliesInOrderIncludingErrors) {
  RedisServer server;
  auto c = r::Connection::connect(server.url());
  r::Pipeline p;
  for (int i = 0; i < 1000; ++i) p.add({"RPUSH", "q", std::to_string(i)});
  p.add({"SET", "s", "v"});
  p.add({"LPUSH", "s", "boom"});  // WRONGTYPE, returned not thrown
  p.add({"LLEN", "q"});
  auto replies = c.execute(p);
  ASSERT_EQ(replies.size(), 1003u);
  EXPECT_EQ(replies[999].integer(), 1000);
  EXPECT_TRUE(replies[1001].is_error());
  EXPECT_EQ(replies[1002].integer(), 1000);
  EXPECT_TRUE(c.execute(r::Pipeline{}).empty());
}

TEST(RedisConnection, LargeValuesRoundTrip) {
  RedisServer server;
  auto c = r::Connection::connect(server.url());
  std::string big(3 * 1024 * 1024, 'x');
  for (size_t i = 0; i < big.size(); i += 4097) big[i] = static_cast<char>(i % 251);
  c.command({"SET", "big", big});
  EXPECT_EQ(c.command({"GET", "big"}).str(), big);
}

TEST(RedisConnection, TransactionsAndWatch) {
  RedisServer server;
  auto c = r::Connection::connect(server.url());
  auto other = r::Connection::connect(server.url());
  r::Pipeline t;
  t.add({"INCR", "n"}).add({"INCR", "n"}).add({"GET", "n"});
  auto res = c.transaction(t);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->size(), 3u);
  EXPECT_EQ((*res)[2].str(), "2");
  // WATCH + a concurrent change = EXEC nil
  c.command({"WATCH", "n"});
  other.command({"SET", "n", "100"});
  r::Pipeline t2;
  t2.add({"INCR", "n"});
  EXPECT_FALSE(c.transaction(t2).has_value());
  EXPECT_EQ(c.command({"GET", "n"}).str(), "100");
  // a command rejected while queuing aborts the whole EXEC
  r::Pipeline bad;
  bad.add({"INCR", "n"}).add({"NOSUCHCOMMAND"});
  EXPECT_THROW(c.transaction(bad), r::ReplyError);
  EXPECT_EQ(c.command({"GET", "n"}).str(), "100");
}

TEST(RedisConnection, SelectsTheUrlsDatabase) {
  RedisServer server;
  auto c3 = r::Connection::connect(server.url(3));
  c3.command({"SET", "where", "db3"});
  auto c0 = r::Connection::connect(server.url(0));
  EXPECT_TRUE(c0.command({"GET", "where"}).is_nil());
  EXPECT_EQ(server.cli({"-n", "3", "GET", "where"}), "db3");
}

TEST(RedisConnection, AuthWithPasswordAndWrongPassword) {
  RedisServer server(RedisServer::Options{false, "t0p-secret"});
  auto c = r::Connection::connect(server.url());
  EXPECT_EQ(c.command({"PING"}).str(), "PONG");
  auto u = r::Url::parse(server.url());
  u.password = "wrong";
  try {
    r::Connection::connect(u);
    ADD_FAILURE() << "wrong password accepted";
  } catch (const r::ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find("AUTH"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("wrong"), std::string::npos)
        << "password leaked: " << e.what();
  }
  u.password.clear();
  auto unauth = r::Connection::connect(u);
  EXPECT_THROW(unauth.command({"GET", "x"}), r::ReplyError);  // NOAUTH
}

TEST(RedisConnection, RefusedConnectionSaysWhere) {
  int port = celeriac::tq::test::free_port();
  try {
    r::Connection::connect("redis://127.0.0.1:" + std::to_string(port) + "/0");
    ADD_FAILURE() << "connected to a closed port";
  } catch (const r::ConnectionError& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}

TEST(RedisConnection, ReplyTimeoutClosesTheConnection) {
  RedisServer server;
  r::ConnectOptions o;
  o.io_timeout = 200ms;
  auto c = r::Connection::connect(r::Url::parse(server.url()), o);
  EXPECT_THROW(c.command({"BLPOP", "never", "5"}), r::TimeoutError);
  EXPECT_FALSE(c.is_open());
  EXPECT_THROW(c.command({"PING"}), r::ConnectionError);
  // an explicit longer timeout makes a blocking command fine
  auto c2 = r::Connection::connect(r::Url::parse(server.url()), o);
  EXPECT_TRUE(c2.command_timeout(3s, {"BLPOP", "never", "0.3"}).is_nil());
}

TEST(RedisConnection, ServerGoneIsAConnectionErrorThenReconnectWorks) {
  RedisServer server;
  auto url = r::Url::parse(server.url());
  auto c = r::Connection::connect(url);
  c.command({"SET", "a", "1"});
  server.kill_hard();
  EXPECT_THROW(c.command({"GET", "a"}), r::ConnectionError);
  EXPECT_FALSE(c.is_open());
  // restart in the background; connect_with_retry waits for it
  std::thread restarter([&] {
    std::this_thread::sleep_for(300ms);
    server.start();
  });
  auto c2 = r::connect_with_retry(url, std::chrono::steady_clock::now() + 20s);
  restarter.join();
  EXPECT_EQ(c2.command({"PING"}).str(), "PONG");
  // and a deadline in the past gives up with the last error
  server.stop();
  EXPECT_THROW(r::connect_with_retry(url, std::chrono::steady_clock::now() + 100ms),
               r::ConnectionError);
}

TEST(RedisBackoff, DoublesUpToTheMaximum) {
  r::Backoff b{10ms, 100ms};
  EXPECT_EQ(b.delay(0), r::Duration(10ms));
  EXPECT_EQ(b.delay(1), r::Duration(20ms));
  EXPECT_EQ(b.delay(3), r::Duration(80ms));
  EXPECT_EQ(b.delay(4), r::Duration(100ms));
  EXPECT_EQ(b.delay(60), r::Duration(100ms));
}

TEST(RedisSubscriber, ChannelsPatternsAndResubscribeAfterRestart) {
  RedisServer server;
  auto url = r::Url::parse(server.url());
  r::Subscriber sub(url);
  sub.subscribe({"chan.a"});
  sub.psubscribe({"/0.celeryev/*"});
  auto pub = r::Connection::connect(url);
  EXPECT_EQ(pub.command({"PUBLISH", "chan.a", "hello"}).integer(), 1);
  EXPECT_EQ(pub.command({"PUBLISH", "/0.celeryev/task.multi", "[1]"}).integer(), 1);
  auto m1 = sub.get_message(5s);
  ASSERT_TRUE(m1);
  EXPECT_EQ(m1->channel, "chan.a");
  EXPECT_EQ(m1->data, "hello");
  EXPECT_EQ(m1->pattern, "");
  auto m2 = sub.get_message(5s);
  ASSERT_TRUE(m2);
  EXPECT_EQ(m2->channel, "/0.celeryev/task.multi");
  EXPECT_EQ(m2->pattern, "/0.celeryev/*");
  EXPECT_EQ(m2->data, "[1]");
  EXPECT_FALSE(sub.get_message(50ms));  // nothing more: a timeout is not an error
  sub.unsubscribe({"chan.a"});
  pub.command({"PUBLISH", "chan.a", "lost"});
  pub.command({"PUBLISH", "/0.celeryev/x", "kept"});
  auto m3 = sub.get_message(5s);
  ASSERT_TRUE(m3);
  EXPECT_EQ(m3->data, "kept");

  server.kill_hard();
  EXPECT_THROW(sub.get_message(2s), r::ConnectionError);
  server.start();
  sub.reconnect(std::chrono::steady_clock::now() + 10s);
  auto pub2 = r::Connection::connect(url);
  EXPECT_EQ(pub2.command({"PUBLISH", "/0.celeryev/y", "again"}).integer(), 1);
  auto m4 = sub.get_message(5s);
  ASSERT_TRUE(m4);
  EXPECT_EQ(m4->data, "again");
}
