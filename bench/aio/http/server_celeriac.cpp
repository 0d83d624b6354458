// celeriac's aio streams: start_server with one task per connection, reads
// with StreamReader::read_into, answers with StreamWriter::write (sent at
// once when the socket takes it, no copy). The same HTTP handling as the
// other servers (http_common.hpp).
#include <cstdio>
#include <string>

#include "celeriac/aio.hpp"
#include "http_common.hpp"

namespace celeriac_bench {
namespace {

using namespace celeriac;

aio::Task<void> session(aio::StreamReader reader, aio::StreamWriter writer) {
  char buf[16384];
  HelloSession http;
  try {
    for (;;) {
      std::size_t r = co_await reader.read_into(buf, sizeof buf);
      if (r == 0) break;
      std::string_view reply = http.on_bytes(buf, r);
      if (!reply.empty()) writer.write(reply);
      if (writer.write_buffer_size() > 0) co_await writer.drain();
    }
  } catch (const aio::ConnectionError&) {
    // peer reset: end the session
  }
  writer.close();
}

aio::Task<void> serve(int port) {
  aio::Server server =
      co_await aio::start_server(session, "127.0.0.1", static_cast<std::uint16_t>(port));
  co_await server.serve_forever();
}

}  // namespace

int serve_celeriac(int port) {
  aio::run(serve(port));
  return 0;
}

}  // namespace celeriac_bench
