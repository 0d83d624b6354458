#include "celeriac/sync/thread_name.hpp"

#include <pthread.h>

#include <array>

namespace celeriac::sync {

namespace {

// `name` cut to at most kMaxThreadNameLength bytes, never inside a UTF-8
// multi-byte character (continuation bytes are 10xxxxxx).
std::string_view truncate_utf8(std::string_view name) {
  if (name.size() <= kMaxThreadNameLength) return name;
  std::size_t end = kMaxThreadNameLength;
  while (end > 0 && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80) --end;
  return name.substr(0, end);
}

}  // namespace

std::string set_current_thread_name(std::string_view name) {
  std::string kept(truncate_utf8(name));
  // Cannot fail: the name fits and the thread is the caller.
  pthread_setname_np(pthread_self(), kept.c_str());
  return kept;
}

std::string current_thread_name() {
  std::array<char, kMaxThreadNameLength + 1> buffer{};
  if (pthread_getname_np(pthread_self(), buffer.data(), buffer.size()) != 0) return {};
  return std::string(buffer.data());
}

}  // namespace celeriac::sync
