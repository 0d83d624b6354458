#include "celeriac/mp/shared_memory.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

#include "celeriac/mp/detail/channel.hpp"
#include "celeriac/mp/fork_server.hpp"

namespace celeriac::mp {
namespace detail {

struct Mapping {
  int fd = -1;
  void* addr = nullptr;
  std::size_t size = 0;
  std::string name;
  std::pair<dev_t, ino_t> key{};
  ~Mapping();
};

namespace {
// Mappings alive in this process, by block identity, so that a block
// received again (a task returning the array it was given) reuses the
// mapping instead of mapping (and faulting in) the pages anew.
std::mutex g_reg_mu;
std::map<std::pair<dev_t, ino_t>, std::weak_ptr<Mapping>> g_registry;
// In children, the last few blocks stay mapped between tasks.
std::deque<std::shared_ptr<Mapping>> g_child_cache;
constexpr std::size_t kChildCache = 4;
}  // namespace

Mapping::~Mapping() {
  if (addr && size) ::munmap(addr, size);
  if (fd >= 0) ::close(fd);
  std::lock_guard lock(g_reg_mu);
  auto it = g_registry.find(key);
  if (it != g_registry.end() && it->second.expired()) g_registry.erase(it);
}

namespace {
std::shared_ptr<Mapping> map_fd(int fd, std::string name, bool populate) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_errno("fstat of shared memory");
  }
  auto key = std::make_pair(st.st_dev, st.st_ino);
  std::lock_guard lock(g_reg_mu);
  auto it = g_registry.find(key);
  if (it != g_registry.end()) {
    if (auto m = it->second.lock(); m && m->size == static_cast<std::size_t>(st.st_size)) {
      ::close(fd);
      return m;
    }
  }
  auto m = std::make_shared<Mapping>();
  m->fd = fd;
  m->size = static_cast<std::size_t>(st.st_size);
  m->name = std::move(name);
  m->key = key;
  if (m->size) {
    void* a = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | (populate ? MAP_POPULATE : 0), fd, 0);
    if (a == MAP_FAILED)
      throw_errno("mmap of " + std::to_string(m->size) + " bytes of shared memory");
    m->addr = a;
  }
  g_registry[key] = m;
  if (in_child_process()) {
    g_child_cache.push_back(m);
    if (g_child_cache.size() > kChildCache) g_child_cache.pop_front();
  }
  return m;
}

std::string normalize(const std::string& name) {
  if (name.empty() || name.size() > 250 || name.find('/', 1) != std::string::npos)
    throw std::invalid_argument("celeriac::mp::SharedMemory: bad name '" + name +
                                "' (want a non-empty name without '/' after the first character)");
  return name[0] == '/' ? name : "/" + name;
}
}  // namespace
}  // namespace detail

SharedMemory::SharedMemory(std::size_t size) {
  int fd = ::memfd_create("celeriac-shm", MFD_CLOEXEC);
  if (fd < 0) detail::throw_errno("memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    detail::throw_errno("ftruncate of shared memory to " + std::to_string(size) + " bytes");
  }
  map_ = detail::map_fd(fd, "", false);
}

SharedMemory SharedMemory::create(const std::string& name, std::size_t size) {
  std::string n = detail::normalize(name);
  int fd = ::shm_open(n.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) detail::throw_errno("shm_open(" + n + ", O_CREAT|O_EXCL)");
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int e = errno;
    ::close(fd);
    ::shm_unlink(n.c_str());
    errno = e;
    detail::throw_errno("ftruncate of " + n);
  }
  return SharedMemory(detail::map_fd(fd, n, false));
}

SharedMemory SharedMemory::open(const std::string& name) {
  std::string n = detail::normalize(name);
  int fd = ::shm_open(n.c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) detail::throw_errno("shm_open(" + n + ")");
  return SharedMemory(detail::map_fd(fd, n, true));
}

SharedMemory SharedMemory::from_fd(int fd, std::string name) {
  return SharedMemory(detail::map_fd(fd, std::move(name), true));
}

std::byte* SharedMemory::data() const noexcept {
  return map_ ? static_cast<std::byte*>(map_->addr) : nullptr;
}
std::size_t SharedMemory::size() const noexcept {
  return map_ ? map_->size : 0;
}
const std::string& SharedMemory::name() const noexcept {
  static const std::string empty;
  return map_ ? map_->name : empty;
}
int SharedMemory::fd() const noexcept {
  return map_ ? map_->fd : -1;
}

void SharedMemory::unlink() {
  if (!map_ || map_->name.empty()) return;
  if (::shm_unlink(map_->name.c_str()) != 0 && errno != ENOENT)
    detail::throw_errno("shm_unlink(" + map_->name + ")");
}

}  // namespace celeriac::mp
