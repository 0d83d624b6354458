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
  std::string in, out;
  try {
    for (;;) {
      std::size_t r = co_await reader.read_into(buf, sizeof buf);
      if (r == 0) break;
      const char* data = buf;
      std::size_t len = r;
      if (!in.empty()) {
        in.append(buf, r);
        data = in.data();
        len = in.size();
      }
      std::size_t used = 0;
      std::size_t n = count_requests(data, len, &used);
      std::string rest(data + used, len - used);
      in.swap(rest);
      if (n == 1) {
        writer.write(kResponse);
      } else if (n > 1) {
        out.clear();
        for (std::size_t i = 0; i < n; ++i) out.append(kResponse);
        writer.write(out);
      }
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
