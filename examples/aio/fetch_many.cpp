// Fetching from many connections at once, each request with its own
// timeout (asyncio.gather over asyncio.wait_for). The program starts its own
// little HTTP server on 127.0.0.1: it answers /item/N at once, except every
// fifth item, which it never answers (the client gives up on those).
//
//   fetch_many [--requests N] [--timeout-ms T]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "celeriac/aio.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

namespace {

bool never_answered(int item) {
  return item % 5 == 0;
}

// Server side: reads one request line and its headers, answers "item N",
// or waits for the client to hang up for the items it never answers.
aio::Task<void> handle_request(aio::StreamReader reader, aio::StreamWriter writer) {
  std::string request_line = co_await reader.readline();
  while ((co_await reader.readline()).size() > 2) {
  }  // headers, up to the empty line
  // "GET /item/N HTTP/1.1"
  auto slash = request_line.rfind('/', request_line.find(" HTTP/"));
  int item = std::atoi(request_line.c_str() + slash + 1);
  if (never_answered(item)) {
    co_await reader.read();  // until the client gives up and closes
  } else {
    std::string body = "item " + std::to_string(item) + "\n";
    writer.write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

// Client side: one request on its own connection; returns the body.
aio::Task<std::string> fetch(std::uint16_t port, int item) {
  auto [reader, writer] = co_await aio::open_connection("127.0.0.1", port);
  writer.write("GET /item/" + std::to_string(item) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  co_await writer.drain();
  std::string response = co_await reader.read();  // Connection: close
  writer.close();
  auto body = response.find("\r\n\r\n");
  if (body == std::string::npos) throw Error("bad response for item " + std::to_string(item));
  co_return response.substr(body + 4);
}

aio::Task<int> fetch_all(int requests, aio::Duration timeout) {
  aio::Server server = co_await aio::start_server(handle_request, "127.0.0.1", 0);
  std::vector<aio::Task<std::string>> fetches;
  for (int item = 1; item <= requests; ++item)
    fetches.push_back(aio::wait_for(fetch(server.port(), item), timeout));
  // All at once; a timeout is an outcome, not an error of the batch.
  auto outcomes = co_await aio::gather(aio::return_exceptions, std::move(fetches));
  int ok = 0, timed_out = 0;
  for (std::size_t i = 0; i < outcomes.size(); ++i) {
    try {
      std::string body = outcomes[i].get();
      ++ok;
      if (i < 3) std::printf("item %zu: %s", i + 1, body.c_str());
    } catch (const TimeoutError&) {
      ++timed_out;
    }
  }
  std::printf("%d requests: %d ok, %d timed out\n", requests, ok, timed_out);
  server.close();
  co_await server.wait_closed();
  co_return ok + timed_out == requests ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int requests = 50;
  int timeout_ms = 500;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--requests") == 0 && i + 1 < argc) {
      requests = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
      timeout_ms = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--requests N] [--timeout-ms T]\n", argv[0]);
      return 2;
    }
  }
  return aio::run(fetch_all(requests, std::chrono::milliseconds(timeout_ms)));
}
