// Naming of OS threads, so they show by name in `top -H`, `ps -L`, gdb and perf.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace celeriac::sync {

/// The longest thread name Linux keeps, in bytes (the kernel's 16-byte
/// comm buffer, less its terminating NUL).
inline constexpr std::size_t kMaxThreadNameLength = 15;

/// Names the calling thread. Linux keeps at most kMaxThreadNameLength bytes:
/// a longer name is truncated to that (at a UTF-8 character boundary, so the
/// result stays valid text). Returns the name actually set.
std::string set_current_thread_name(std::string_view name);

/// The calling thread's name as the kernel knows it (by default the
/// program's name, for threads no one named).
std::string current_thread_name();

}  // namespace celeriac::sync
