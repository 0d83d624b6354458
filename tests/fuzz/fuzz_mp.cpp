// Fuzz target: the mp pipe framing and msgpack payloads. The input is
// written to one end of a socket pair and read back by a Channel as a
// parent or child would; every frame's payload is then unpacked as the
// types the pool exchanges. Properties: only mp errors escape; a
// truncated stream ends with ConnectionClosed, never a hang or a crash.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/errors.hpp"
#include "celeriac/mp/serialize.hpp"

using namespace celeriac::mp;

namespace {

template <class T>
void try_unpack(std::string_view bytes) {
  try {
    (void)unpack<T>(bytes);
  } catch (const SerializationError&) {
  }
}

void unpack_all(std::string_view bytes) {
  try_unpack<int>(bytes);
  try_unpack<double>(bytes);
  try_unpack<std::string>(bytes);
  try_unpack<std::vector<int>>(bytes);
  try_unpack<std::vector<std::string>>(bytes);
  try_unpack<std::map<std::string, std::vector<double>>>(bytes);
  try_unpack<std::tuple<int, std::string, bool>>(bytes);
  try_unpack<std::optional<std::string>>(bytes);
  try_unpack<std::variant<int, std::string, std::vector<int>>>(bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  unpack_all(bytes);
  if (size > 100000) return 0;  // stays within one socket buffer: the write never blocks
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  int sndbuf = 256 * 1024;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  std::size_t off = 0;
  while (off < size) {
    ssize_t w = ::write(fds[0], data + off, size - off);
    if (w <= 0) break;
    off += static_cast<std::size_t>(w);
  }
  ::close(fds[0]);
  detail::Channel ch(fds[1]);
  auto deadline = detail::Clock::now() + std::chrono::seconds(5);
  try {
    for (int frames = 0; frames < 1000; ++frames) {
      detail::Frame f;
      if (!ch.recv_frame(f, deadline)) break;
      unpack_all(f.body());
    }
  } catch (const ConnectionClosed&) {
  } catch (const SystemError&) {
  }
  return 0;
}
