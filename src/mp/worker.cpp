// What runs in a child: the task loop, and the helpers serialization needs.
#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <new>
#include <stdexcept>
#include <typeinfo>
#include <utility>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/detail/remote.hpp"
#include "celeriac/mp/detail/task.hpp"
#include "celeriac/mp/errors.hpp"

namespace celeriac::mp::detail {

int attach_fd(int fd) {
  if (!tls_out_fds)
    throw SerializationError(
        "celeriac::mp: this value holds a file descriptor and can only be sent to a process "
        "(as a task argument or result, or through a Pipe/Queue)");
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) throw_errno("dup of a descriptor being sent");
  tls_out_fds->push_back(d);
  return static_cast<int>(tls_out_fds->size() - 1);
}

int take_fd(int index) {
  if (!tls_in_fds || index < 0 || static_cast<std::size_t>(index) >= tls_in_fds->size() ||
      (*tls_in_fds)[static_cast<std::size_t>(index)] < 0)
    throw SerializationError("celeriac::mp: a received handle refers to a missing file descriptor");
  return std::exchange((*tls_in_fds)[static_cast<std::size_t>(index)], -1);
}

void throw_serialization_error(const char* what, const char* type) {
  throw SerializationError(std::string("celeriac::mp: cannot decode a value of type ") +
                           demangle(type) + ": " + what);
}

void close_fds(std::vector<int>& fds) noexcept {
  for (int f : fds)
    if (f >= 0) ::close(f);
  fds.clear();
}

std::string demangle(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> s(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
  return status == 0 && s ? std::string(s.get()) : std::string(mangled);
}

std::string symbol_name(std::uint64_t address) {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), &info) &&
      info.dli_sname)
    return demangle(info.dli_sname);
  char buf[32];
  std::snprintf(buf, sizeof buf, "function at 0x%llx", static_cast<unsigned long long>(address));
  return buf;
}

void child_exit(int code) noexcept {
  try {
    std::cout.flush();
    std::cerr.flush();
  } catch (...) {
  }
  std::fflush(nullptr);
  ::_exit(code);
}

namespace {

template <class E>
std::exception_ptr make(const std::string& m) {
  return std::make_exception_ptr(E(m));
}

// The error a child sends: [type name, message].
void pack_error(msgpack::sbuffer& out, const std::string& type, const std::string& message) {
  msgpack::pack(out, std::make_tuple(type, message));
}

// Whether code at `address` exists in this process (a loaded object holds
// it). A function from a library the parent loaded after the fork server
// started does not: calling it would crash the worker with no explanation.
bool code_exists(std::uint64_t address) {
  Dl_info info{};
  return ::dladdr(reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), &info) != 0;
}

void check_code_exists(std::uint64_t invoke_word, std::uint64_t fn) {
  for (std::uint64_t address : {invoke_word, fn}) {
    if (address == 0 || code_exists(address)) continue;
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(address));
    throw SerializationError(
        std::string("celeriac::mp: the task's code (at ") + buf +
        ") does not exist in the child process: it comes from a library loaded after the fork "
        "server started. Load it before calling celeriac::mp::init() (or before the first "
        "pool/Process), or link it into the program");
  }
}

// kRunOnce: the streams named in `mask` (bit 1 stdout, bit 2 stderr) go to
// the last descriptors of the frame, in that order.
void apply_redirects(std::uint64_t mask, std::vector<int>& fds) {
  for (int target : {STDERR_FILENO, STDOUT_FILENO}) {
    if (!(mask & (std::uint64_t{1} << target))) continue;
    if (fds.empty() || fds.back() < 0 || ::dup2(fds.back(), target) < 0) child_exit(72);
    ::close(fds.back());
    fds.pop_back();
  }
}

}  // namespace

std::exception_ptr remote_exception(const std::string& type, const std::string& m) {
  if (type == "std::runtime_error") return make<std::runtime_error>(m);
  if (type == "std::logic_error") return make<std::logic_error>(m);
  if (type == "std::invalid_argument") return make<std::invalid_argument>(m);
  if (type == "std::out_of_range") return make<std::out_of_range>(m);
  if (type == "std::length_error") return make<std::length_error>(m);
  if (type == "std::domain_error") return make<std::domain_error>(m);
  if (type == "std::range_error") return make<std::range_error>(m);
  if (type == "std::overflow_error") return make<std::overflow_error>(m);
  if (type == "std::underflow_error") return make<std::underflow_error>(m);
  if (type == "std::bad_alloc") return std::make_exception_ptr(std::bad_alloc());
  if (type == "celeriac::Error") return make<Error>(m);
  if (type == "celeriac::TimeoutError") return make<TimeoutError>(m);
  if (type == "celeriac::CancelledError") return make<CancelledError>(m);
  if (type == "celeriac::InvalidStateError") return make<InvalidStateError>(m);
  if (type == "celeriac::mp::SerializationError") return make<SerializationError>(m);
  return std::make_exception_ptr(RemoteError(type, m));
}

std::exception_ptr decode_error_payload(std::string_view payload) {
  try {
    auto [type, message] = unpack<std::tuple<std::string, std::string>>(payload);
    return remote_exception(type, message);
  } catch (...) {
    return std::current_exception();
  }
}

void child_main(int fd) {
  try {
    Channel ch(fd);
    Frame f;
    msgpack::sbuffer out;
    for (;;) {
      try {
        ch.recv_frame(f, Clock::time_point::max());
      } catch (const ConnectionClosed&) {
        child_exit(0);  // the parent closed our channel: done
      }
      const std::string_view body = f.body();
      const std::size_t head = f.kind == kRunOnce ? 24 : 16;
      if (body.size() < head) child_exit(70);
      std::uint64_t invoke_word, fn;
      std::memcpy(&invoke_word, body.data(), 8);
      std::memcpy(&fn, body.data() + 8, 8);
      if (f.kind == kRunOnce) {
        std::uint64_t redirects;
        std::memcpy(&redirects, body.data() + 16, 8);
        apply_redirects(redirects, f.fds);
      }
      auto invoke = reinterpret_cast<InvokeFn>(static_cast<std::uintptr_t>(invoke_word));
      std::string_view args = body.substr(head);
      out.clear();
      std::vector<int> out_fds;
      std::uint8_t kind = kResult;
      std::string err_type, err_msg;
      try {
        FdScope scope(&out_fds, &f.fds);
        check_code_exists(invoke_word, fn);
        invoke(fn, args, out);
      } catch (const std::exception& e) {
        kind = kError;
        err_type = demangle(typeid(e).name());
        err_msg = e.what();
      } catch (...) {
        kind = kError;
        err_type = "unknown exception";
        err_msg = "a task threw something that is not a std::exception";
      }
      close_fds(f.fds);
      if (f.kind == kRunOnce) {
        if (kind == kError) {
          std::fprintf(stderr, "celeriac::mp::Process pid %d: uncaught exception %s: %s\n",
                       static_cast<int>(::getpid()), err_type.c_str(), err_msg.c_str());
          child_exit(1);
        }
        child_exit(0);
      }
      if (kind == kError) {
        out.clear();
        close_fds(out_fds);
        pack_error(out, err_type, err_msg);
      }
      ch.enqueue(kind, f.id, std::string_view(out.data(), out.size()), {}, &out_fds);
      try {
        ch.send_all(Clock::time_point::max());
      } catch (...) {
        child_exit(0);  // parent gone
      }
      // A worker whose initializer failed must not run the tasks already
      // sent behind it (as Python's): the parent breaks the pool on the reply.
      if (f.kind == kInit && kind == kError) child_exit(1);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "celeriac::mp: worker pid %d failed: %s\n", static_cast<int>(::getpid()),
                 e.what());
    child_exit(71);
  }
}

}  // namespace celeriac::mp::detail
