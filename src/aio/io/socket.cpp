// Socket addresses and OS errors of the aio I/O layer.
#include "celeriac/aio/socket.hpp"

#include <arpa/inet.h>
#include <net/if.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace celeriac::aio {

void throw_os_error(int err, std::string_view op, std::string_view where) {
  std::string msg(op);
  if (!where.empty()) {
    msg += ' ';
    msg += where;
  }
  msg += ": ";
  msg += std::strerror(err);
  switch (err) {
    case ECONNREFUSED:
      throw ConnectionRefusedError(err, msg);
    case ECONNRESET:
      throw ConnectionResetError(err, msg);
    case EPIPE:
    case ESHUTDOWN:
      throw BrokenPipeError(err, msg);
    case ECONNABORTED:
      throw ConnectionError(err, msg);
    default:
      throw OSError(err, msg);
  }
}

SocketAddress::SocketAddress(const sockaddr* addr, socklen_t len) {
  if (len > sizeof storage_) throw std::invalid_argument("SocketAddress: address too long");
  std::memcpy(&storage_, addr, len);
  len_ = len;
}

namespace {

std::string quoted(std::string_view s) {
  return "'" + std::string(s) + "'";
}

}  // namespace

SocketAddress SocketAddress::ipv4(std::string_view host, std::uint16_t port) {
  SocketAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage_);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  std::string h(host);
  if (::inet_pton(AF_INET, h.c_str(), &in->sin_addr) != 1)
    throw std::invalid_argument("not a numeric IPv4 address: " + quoted(host));
  a.len_ = sizeof(sockaddr_in);
  return a;
}

SocketAddress SocketAddress::ipv6(std::string_view host, std::uint16_t port) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  SocketAddress a;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  std::string h(host);
  std::string zone;
  if (auto pct = h.find('%'); pct != std::string::npos) {
    zone = h.substr(pct + 1);
    h.resize(pct);
  }
  if (::inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) != 1)
    throw std::invalid_argument("not a numeric IPv6 address: " + quoted(host));
  if (!zone.empty()) {
    unsigned idx = ::if_nametoindex(zone.c_str());
    if (idx == 0) {
      char* end = nullptr;
      unsigned long v = std::strtoul(zone.c_str(), &end, 10);
      if (end == nullptr || *end != '\0')
        throw std::invalid_argument("unknown IPv6 zone in " + quoted(host));
      idx = static_cast<unsigned>(v);
    }
    in6->sin6_scope_id = idx;
  }
  a.len_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* un = reinterpret_cast<sockaddr_un*>(&a.storage_);
  un->sun_family = AF_UNIX;
  if (path.empty()) throw std::invalid_argument("empty Unix socket path");
  if (path.size() >= sizeof(un->sun_path))
    throw std::invalid_argument("Unix socket path longer than " +
                                std::to_string(sizeof(un->sun_path) - 1) +
                                " bytes: " + quoted(path));
  std::memcpy(un->sun_path, path.data(), path.size());
  if (path.front() == '@') {
    un->sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  } else {
    a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  }
  return a;
}

SocketAddress SocketAddress::parse(std::string_view host, std::uint16_t port) {
  if (host.find(':') != std::string_view::npos) return ipv6(host, port);
  return ipv4(host, port);
}

SocketAddress SocketAddress::parse(std::string_view text) {
  if (text.substr(0, 5) == "unix:") return unix_path(text.substr(5));
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size())
    throw std::invalid_argument("address " + quoted(text) + " has no ':port'");
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  unsigned long port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') throw std::invalid_argument("bad port in address " + quoted(text));
    port = port * 10 + static_cast<unsigned long>(c - '0');
    if (port > 65535) throw std::invalid_argument("port out of range in address " + quoted(text));
  }
  if (!host.empty() && host.front() == '[') {
    if (host.back() != ']') throw std::invalid_argument("unclosed '[' in address " + quoted(text));
    return ipv6(host, static_cast<std::uint16_t>(port));
  }
  if (host.find(':') != std::string_view::npos)
    throw std::invalid_argument("IPv6 address " + quoted(text) + " needs brackets: [host]:port");
  return ipv4(host, static_cast<std::uint16_t>(port));
}

Family SocketAddress::family() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET:
      return Family::ipv4;
    case AF_INET6:
      return Family::ipv6;
    case AF_UNIX:
      return Family::unix_path;
    default:
      return Family::unspecified;
  }
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  switch (storage_.ss_family) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                  sizeof buf);
      return buf;
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage_);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
      std::string s = buf;
      if (in6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE] = {};
        s += '%';
        s += ::if_indextoname(in6->sin6_scope_id, name) ? std::string(name)
                                                        : std::to_string(in6->sin6_scope_id);
      }
      return s;
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
      auto off = offsetof(sockaddr_un, sun_path);
      if (len_ <= off) return {};  // unnamed (e.g. a socketpair end)
      std::size_t n = len_ - off;
      if (un->sun_path[0] == '\0') {
        // Abstract name: shown with a leading '@' (appended, see to_string).
        std::string name;
        name.reserve(n);
        name.push_back('@');
        name.append(un->sun_path + 1, n - 1);
        return name;
      }
      return std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    default:
      return {};
  }
}

std::uint16_t SocketAddress::port() const noexcept {
  switch (storage_.ss_family) {
    case AF_INET:
      return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
      return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
      return 0;
  }
}

std::string SocketAddress::to_string() const {
  // Built by appending to one string: `"literal" + std::string&&` makes g++
  // 12 report a false -Wrestrict.
  std::string out;
  switch (storage_.ss_family) {
    case AF_INET:
      out = host();
      out += ':';
      out += std::to_string(port());
      return out;
    case AF_INET6:
      out = "[";
      out += host();
      out += "]:";
      out += std::to_string(port());
      return out;
    case AF_UNIX:
      out = "unix:";
      out += host();
      return out;
    default:
      return "<unspecified>";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

}  // namespace celeriac::aio
