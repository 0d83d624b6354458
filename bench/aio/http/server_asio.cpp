// Boost.Asio (standalone, header-only) with C++20 coroutines: one
// io_context on one thread, one coroutine per connection.
#define ASIO_STANDALONE 1
#define ASIO_NO_DEPRECATED 1
#include <asio.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <cstdio>
#include <string>

#include "http_common.hpp"

namespace celeriac_bench {
namespace {

using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;

awaitable<void> session(tcp::socket sock) {
  sock.set_option(tcp::no_delay(true));
  char buf[16384];
  HelloSession http;
  try {
    for (;;) {
      std::size_t r = co_await sock.async_read_some(asio::buffer(buf), use_awaitable);
      std::string_view reply = http.on_bytes(buf, r);
      if (!reply.empty())
        co_await asio::async_write(sock, asio::buffer(reply.data(), reply.size()), use_awaitable);
    }
  } catch (const std::exception&) {
    // peer closed or reset: end the session
  }
}

awaitable<void> listener(tcp::acceptor acc) {
  for (;;) {
    tcp::socket s = co_await acc.async_accept(use_awaitable);
    asio::co_spawn(acc.get_executor(), session(std::move(s)), asio::detached);
  }
}

}  // namespace

int serve_asio(int port) {
  asio::io_context ctx(1);  // concurrency hint 1: no locking inside
  tcp::acceptor acc(
      ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  asio::co_spawn(ctx, listener(std::move(acc)), asio::detached);
  ctx.run();
  return 0;
}

}  // namespace celeriac_bench
