// resolve(): numeric hosts without a thread, names on a worker thread while
// the loop keeps running, family filters, errors for names that do not
// resolve, and cancellation of a pending lookup.
#include <gtest/gtest.h>
#include <netdb.h>

#include <algorithm>
#include <string>
#include <vector>

#include "celeriac/aio/dns.hpp"
#include "celeriac/aio/sleep.hpp"
#include "celeriac/aio/task.hpp"
#include "celeriac/aio/timeout.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> hosts_of(const std::vector<aio::SocketAddress>& addrs) {
  std::vector<std::string> out;
  for (const auto& a : addrs) out.push_back(a.host());
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

TEST(AioIoDns, NumericHostsResolveAtOnce) {
  auto main = []() -> aio::Task<void> {
    auto v4 = co_await aio::resolve("127.0.0.1", 8080);
    EXPECT_EQ(v4.size(), 1u);
    EXPECT_EQ(v4.at(0).to_string(), "127.0.0.1:8080");
    auto v6 = co_await aio::resolve("::1", 80);
    EXPECT_EQ(v6.size(), 1u);
    EXPECT_EQ(v6.at(0).family(), aio::Family::ipv6);
    EXPECT_EQ(v6.at(0).port(), 80);
  };
  aio::run(main());
}

TEST(AioIoDns, LocalhostResolvesOnAWorkerWhileTheLoopRuns) {
  auto main = []() -> aio::Task<void> {
    // A ticker proves the loop is not blocked while the lookup runs.
    int ticks = 0;
    bool stop = false;
    auto ticker = aio::spawn([](int& t, bool& s) -> aio::Task<void> {
      while (!s) {
        ++t;
        co_await aio::sleep(0s);
      }
    }(ticks, stop));
    auto addrs = co_await aio::resolve("localhost", 6379, AF_INET);
    stop = true;
    co_await ticker;
    EXPECT_GT(ticks, 0);
    EXPECT_FALSE(addrs.empty());
    EXPECT_TRUE(contains(hosts_of(addrs), "127.0.0.1"));
    for (const auto& a : addrs) {
      EXPECT_EQ(a.family(), aio::Family::ipv4);
      EXPECT_EQ(a.port(), 6379);
    }
  };
  aio::run(main());
}

TEST(AioIoDns, UnknownNameIsAGaiError) {
  auto main = []() -> aio::Task<void> {
    bool thrown = false;
    try {
      // .invalid never resolves (RFC 6761).
      co_await aio::wait_for(aio::resolve("celeriac-no-such-host.invalid", 80), 30s);
    } catch (const aio::GaiError& e) {
      thrown = true;
      EXPECT_NE(e.gai_code(), 0);
      EXPECT_NE(std::string(e.what()).find("celeriac-no-such-host.invalid"), std::string::npos)
          << e.what();
    }
    EXPECT_TRUE(thrown);
  };
  aio::run(main());
}

TEST(AioIoDns, CancelledLookupLeavesNoTraceAndTheLoopCanClose) {
  auto main = []() -> aio::Task<void> {
    auto lookup = aio::spawn(aio::resolve("localhost", 80));
    co_await aio::sleep(0s);  // started: the worker thread runs
    lookup.cancel();
    bool cancelled = false;
    try {
      co_await lookup;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    // Either the cancel won, or the answer had already been delivered.
    EXPECT_TRUE(cancelled || lookup.done());
    // Another lookup works afterwards.
    auto addrs = co_await aio::resolve("localhost", 80, AF_INET);
    EXPECT_FALSE(addrs.empty());
  };
  aio::run(main());
  // The loop closes while a lookup is pending: its frame is destroyed and
  // the worker's late answer is dropped.
  {
    aio::EventLoop loop;
    loop.run_until_complete([]() -> aio::Task<void> {
      aio::spawn(aio::resolve("localhost", 80));
      co_await aio::sleep(0s);
    }());
  }
}
