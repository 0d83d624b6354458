// Shared pieces of the HTTP "hello" servers in benchmark (a): every server
// parses and answers requests with exactly this code, so the benchmark
// measures the event loop and not the HTTP handling.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace celeriac_bench {

/// The response to every request (keep-alive is the HTTP/1.1 default).
inline constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nServer: b\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
    "Hello, World!";

/// Consumes the complete requests at the front of [data, data+len): returns
/// how many there are and stores in *used the bytes they span. Requests have
/// no body (wrk sends GETs).
inline std::size_t count_requests(const char* data, std::size_t len, std::size_t* used) {
  std::size_t n = 0, pos = 0;
  while (pos < len) {
    const void* end = memmem(data + pos, len - pos, "\r\n\r\n", 4);
    if (end == nullptr) break;
    pos = static_cast<std::size_t>(static_cast<const char*>(end) - data) + 4;
    ++n;
  }
  *used = pos;
  return n;
}

/// The HTTP side of one connection, shared by the servers built on a
/// library's reads (Asio, libuv, celeriac): keeps the bytes of an incomplete
/// request between reads and returns the responses owed for the bytes just
/// read (empty when none): one kResponse per complete request.
class HelloSession {
 public:
  std::string_view on_bytes(const char* buf, std::size_t r) {
    const char* data = buf;
    std::size_t len = r;
    if (!in_.empty()) {
      in_.append(buf, r);
      data = in_.data();
      len = in_.size();
    }
    std::size_t used = 0;
    std::size_t n = count_requests(data, len, &used);
    std::string rest(data + used, len - used);
    in_.swap(rest);
    if (n == 1) return kResponse;
    out_.clear();
    for (std::size_t i = 0; i < n; ++i) out_.append(kResponse);
    return out_;
  }

 private:
  std::string in_;   // an incomplete request
  std::string out_;  // responses to several pipelined requests
};

/// Entry points of the C++ servers; each listens on 127.0.0.1:port on the
/// calling thread until SIGTERM/SIGINT kills the process.
int serve_epoll(int port);
int serve_asio(int port);
int serve_uv(int port);
int serve_celeriac(int port);

}  // namespace celeriac_bench
