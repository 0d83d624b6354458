// Exceptions crossing the process boundary.
#pragma once

#include <exception>
#include <string>
#include <string_view>

namespace celeriac::mp::detail {

/// The exception a child reported as (type name, message): the standard
/// exception of that name when there is one (std::runtime_error,
/// std::invalid_argument, std::bad_alloc, celeriac::TimeoutError...),
/// otherwise mp::RemoteError.
std::exception_ptr remote_exception(const std::string& type, const std::string& message);

/// Same, from a kError payload.
std::exception_ptr decode_error_payload(std::string_view payload);

/// Flushes stdio and leaves without running atexit handlers or leak checks
/// (what a forked child must do).
[[noreturn]] void child_exit(int code) noexcept;

}  // namespace celeriac::mp::detail

namespace celeriac::mp::detail {
/// Body of every child forked by the fork server: runs the frames that
/// arrive on `fd` until it closes.
[[noreturn]] void child_main(int fd);
}  // namespace celeriac::mp::detail
