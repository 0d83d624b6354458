// libuv: one uv_loop on one thread, uv_read_start callbacks, uv_try_write
// with a uv_write fallback (what libuv servers such as Node's do).
#include <uv.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "http_common.hpp"

namespace celeriac_bench {
namespace {

struct Conn {
  uv_tcp_t tcp;
  HelloSession http;
  char buf[16384];
};

struct WriteReq {
  uv_write_t req;
  std::string data;
};

void on_close(uv_handle_t* h) {
  delete reinterpret_cast<Conn*>(h);
}

void on_alloc(uv_handle_t* h, size_t, uv_buf_t* b) {
  auto* c = reinterpret_cast<Conn*>(h);
  *b = uv_buf_init(c->buf, sizeof c->buf);
}

void on_written(uv_write_t* req, int) {
  delete reinterpret_cast<WriteReq*>(req);
}

void send_all(Conn* c, const char* p, std::size_t n) {
  uv_buf_t b = uv_buf_init(const_cast<char*>(p), static_cast<unsigned>(n));
  int w = uv_try_write(reinterpret_cast<uv_stream_t*>(&c->tcp), &b, 1);
  std::size_t done = w > 0 ? static_cast<std::size_t>(w) : 0;
  if (w < 0 && w != UV_EAGAIN) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
    return;
  }
  if (done == n) return;
  auto* wr = new WriteReq;
  wr->data.assign(p + done, n - done);
  uv_buf_t rb = uv_buf_init(wr->data.data(), static_cast<unsigned>(wr->data.size()));
  uv_write(&wr->req, reinterpret_cast<uv_stream_t*>(&c->tcp), &rb, 1, on_written);
}

void on_read(uv_stream_t* s, ssize_t r, const uv_buf_t*) {
  auto* c = reinterpret_cast<Conn*>(s);
  if (r < 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(s), on_close);
    return;
  }
  if (r == 0) return;
  std::string_view reply = c->http.on_bytes(c->buf, static_cast<std::size_t>(r));
  if (!reply.empty()) send_all(c, reply.data(), reply.size());
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) return;
  auto* c = new Conn;
  uv_tcp_init(server->loop, &c->tcp);
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->tcp), on_close);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), on_alloc, on_read);
}

}  // namespace

int serve_uv(int port) {
  uv_loop_t* loop = uv_default_loop();
  uv_tcp_t server;
  uv_tcp_init(loop, &server);
  sockaddr_in addr{};
  uv_ip4_addr("127.0.0.1", port, &addr);
  if (uv_tcp_bind(&server, reinterpret_cast<const sockaddr*>(&addr), 0) != 0 ||
      uv_listen(reinterpret_cast<uv_stream_t*>(&server), 1024, on_connection) != 0) {
    std::fprintf(stderr, "libuv server: cannot listen on port %d\n", port);
    return 1;
  }
  return uv_run(loop, UV_RUN_DEFAULT);
}

}  // namespace celeriac_bench
