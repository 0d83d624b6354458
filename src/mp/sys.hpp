// System calls glibc 2.36's <sys/pidfd.h> declares without C linkage.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace celeriac::mp::detail {

inline int sys_pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
inline int sys_pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

}  // namespace celeriac::mp::detail
