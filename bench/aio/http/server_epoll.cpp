// The baseline of benchmark (a): a raw, edge-triggered epoll loop written
// with nothing but syscalls. Sockets are registered once; a read that comes
// back short means the socket is drained, so the loop waits for the next edge
// without a read that would fail with EAGAIN.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "http_common.hpp"

namespace celeriac_bench {
namespace {

struct Conn {
  int fd = -1;
  std::string in;   // bytes of an incomplete request
  std::string out;  // responses the kernel did not take yet
  bool want_out = false;
};

void close_conn(int ep, Conn* c) {
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, nullptr);
  ::close(c->fd);
  delete c;
}

// Writes what is pending; false when the connection failed.
bool flush(Conn* c) {
  while (!c->out.empty()) {
    ssize_t w = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN) return true;
      if (errno == EINTR) continue;
      return false;
    }
    c->out.erase(0, static_cast<std::size_t>(w));
  }
  return true;
}

// Reads until the socket is drained and answers every complete request.
bool on_readable(Conn* c, bool hup) {
  char buf[16384];
  for (;;) {
    ssize_t r = ::read(c->fd, buf, sizeof buf);
    if (r == 0) return false;
    if (r < 0) {
      if (errno == EAGAIN) return true;
      if (errno == EINTR) continue;
      return false;
    }
    const char* data = buf;
    std::size_t len = static_cast<std::size_t>(r);
    if (!c->in.empty()) {
      c->in.append(buf, len);
      data = c->in.data();
      len = c->in.size();
    }
    std::size_t used = 0;
    std::size_t n = count_requests(data, len, &used);
    std::string rest(data + used, len - used);
    c->in.swap(rest);
    if (n > 0) {
      if (c->out.empty() && n == 1) {
        ssize_t w = ::send(c->fd, kResponse.data(), kResponse.size(), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) return false;
        std::size_t done = w < 0 ? 0 : static_cast<std::size_t>(w);
        if (done < kResponse.size()) c->out.append(kResponse.substr(done));
      } else {
        for (std::size_t i = 0; i < n; ++i) c->out.append(kResponse);
        if (!flush(c)) return false;
      }
    }
    // A short read drained the socket; unless the peer hung up in the same
    // edge, wait for the next edge instead of reading EAGAIN.
    if (static_cast<std::size_t>(r) < sizeof buf && !hup) return true;
  }
}

}  // namespace

int serve_epoll(int port) {
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 || ::listen(lfd, 1024) < 0) {
    std::perror("epoll server: bind/listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the listener
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (;;) {
          int fd = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* nc = new Conn;
          nc->fd = fd;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
          cev.data.ptr = nc;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
          // Data may already be there: an edge-triggered fd reports it anyway.
        }
        continue;
      }
      uint32_t e = events[i].events;
      bool ok = true;
      if (e & (EPOLLERR)) ok = false;
      if (ok && (e & EPOLLOUT) && !c->out.empty()) ok = flush(c);
      if (ok && (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
        ok = on_readable(c, (e & (EPOLLRDHUP | EPOLLHUP)) != 0);
      if (!ok) close_conn(ep, c);
    }
  }
}

}  // namespace celeriac_bench
