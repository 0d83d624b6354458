// An echo server (asyncio's start_server example): every line a client
// sends comes back. By default it serves three clients of its own, printing
// what they get back, and exits; with --forever it serves until SIGINT or
// SIGTERM (try `nc 127.0.0.1 <port>`).
//
//   echo_server [--port P] [--forever]
#include <signal.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "celeriac/aio.hpp"

using namespace celeriac;

namespace {

// One connection: echo lines until the client closes.
aio::Task<void> handle_echo(aio::StreamReader reader, aio::StreamWriter writer) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;  // EOF
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

// A client: sends two lines, prints the echoes.
aio::Task<void> client(std::uint16_t port, int id) {
  auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
  for (int i = 0; i < 2; ++i) {
    writer.write("client " + std::to_string(id) + " line " + std::to_string(i) + "\n");
    co_await writer.drain();
    std::string echo = co_await reader.readline();
    std::printf("client %d got: %s", id, echo.c_str());
  }
  writer.close();
  co_await writer.wait_closed();
}

aio::Task<int> serve(std::uint16_t port, bool forever) {
  aio::Server server = co_await aio::start_server(handle_echo, "127.0.0.1", port);
  std::printf("serving on %s\n", server.sockets().at(0).to_string().c_str());
  std::fflush(stdout);
  if (forever) {
    aio::add_signal_handler(SIGINT, [server]() mutable { server.close(); });
    aio::add_signal_handler(SIGTERM, [server]() mutable { server.close(); });
    co_await server.serve_forever();
  } else {
    // The clients run one after another so that the output is in order.
    for (int id = 1; id <= 3; ++id) co_await client(server.port(), id);
    server.close();
  }
  co_await server.wait_closed();
  std::puts("server closed");
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  bool forever = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else if (std::strcmp(argv[i], "--forever") == 0) {
      forever = true;
    } else {
      std::fprintf(stderr, "usage: %s [--port P] [--forever]\n", argv[0]);
      return 2;
    }
  }
  return aio::run(serve(port, forever));
}
