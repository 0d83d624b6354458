#include "celeriac/mp/queue.hpp"

#include <pthread.h>
#include <time.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "celeriac/mp/detail/channel.hpp"

namespace celeriac::mp::detail {

struct QueueCore::Header {
  std::uint64_t magic;
  pthread_mutex_t mu;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  std::uint64_t capacity;  // bytes in the ring
  std::uint64_t maxsize;   // items, 0 = unlimited
  std::uint64_t count;     // items
  std::uint64_t used;      // bytes
  std::uint64_t head;      // read offset in the ring
  std::uint64_t tail;      // write offset in the ring
  std::uint32_t closed;
  char* ring() { return reinterpret_cast<char*>(this + 1); }
};

namespace {
constexpr std::uint64_t kMagic = 0x63656c2d71756575ULL;  // "cel-queu"

// Locks the robust mutex; recovers it when its holder died.
class Lock {
 public:
  explicit Lock(pthread_mutex_t* m) : m_(m) {
    int r = pthread_mutex_lock(m_);
    if (r == EOWNERDEAD) {
      pthread_mutex_consistent(m_);
    } else if (r != 0) {
      errno = r;
      throw_errno("pthread_mutex_lock (Queue)");
    }
  }
  ~Lock() { pthread_mutex_unlock(m_); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  pthread_mutex_t* m_;
};

// Waits on `cv`; false when the deadline passed.
bool wait(pthread_cond_t* cv, pthread_mutex_t* mu,
          const std::optional<std::chrono::steady_clock::time_point>& deadline) {
  int r;
  if (!deadline) {
    r = pthread_cond_wait(cv, mu);
  } else {
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch()).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    r = pthread_cond_timedwait(cv, mu, &ts);  // condattr clock: CLOCK_MONOTONIC = steady_clock
  }
  if (r == EOWNERDEAD) pthread_mutex_consistent(mu);
  return r != ETIMEDOUT;
}

void copy_in(char* ring, std::uint64_t cap, std::uint64_t at, const void* src, std::uint64_t n) {
  at %= cap;
  std::uint64_t first = std::min(n, cap - at);
  std::memcpy(ring + at, src, first);
  if (n > first) std::memcpy(ring, static_cast<const char*>(src) + first, n - first);
}
void copy_out(const char* ring, std::uint64_t cap, std::uint64_t at, void* dst, std::uint64_t n) {
  at %= cap;
  std::uint64_t first = std::min(n, cap - at);
  std::memcpy(dst, ring + at, first);
  if (n > first) std::memcpy(static_cast<char*>(dst) + first, ring, n - first);
}
}  // namespace

QueueCore::QueueCore(std::size_t maxsize, std::size_t capacity_bytes)
    : mem_(sizeof(Header) + capacity_bytes) {
  if (capacity_bytes < 64)
    throw std::invalid_argument("celeriac::mp::Queue: capacity_bytes must be at least 64");
  auto* h = new (mem_.data()) Header{};
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&h->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->not_empty, &ca);
  pthread_cond_init(&h->not_full, &ca);
  pthread_condattr_destroy(&ca);
  h->capacity = capacity_bytes;
  h->maxsize = maxsize;
  h->magic = kMagic;
}

QueueCore::QueueCore(SharedMemory mem) : mem_(std::move(mem)) {
  if (mem_.size() < sizeof(Header) || header()->magic != kMagic)
    throw SerializationError("celeriac::mp::Queue: the received block is not a queue");
}

QueueCore::Header* QueueCore::header() const {
  if (!mem_.valid()) throw InvalidStateError("celeriac::mp::Queue: empty (moved-from) queue");
  return reinterpret_cast<Header*>(mem_.data());
}

bool QueueCore::put(std::string_view item, std::optional<Duration> timeout) {
  Header* h = header();
  std::uint64_t need = sizeof(std::uint32_t) + item.size();
  if (need > h->capacity)
    throw std::invalid_argument("celeriac::mp::Queue::put: an item of " +
                                std::to_string(item.size()) + " bytes exceeds the queue's " +
                                std::to_string(h->capacity) + "-byte capacity");
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout) deadline = std::chrono::steady_clock::now() + *timeout;
  Lock lock(&h->mu);
  for (;;) {
    if (h->closed) throw QueueClosed("celeriac::mp::Queue::put: the queue is closed");
    bool room = (h->maxsize == 0 || h->count < h->maxsize) && h->capacity - h->used >= need;
    if (room) break;
    if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
    wait(&h->not_full, &h->mu, deadline);
  }
  auto len = static_cast<std::uint32_t>(item.size());
  copy_in(h->ring(), h->capacity, h->tail, &len, sizeof len);
  copy_in(h->ring(), h->capacity, h->tail + sizeof len, item.data(), item.size());
  h->tail = (h->tail + need) % h->capacity;
  h->used += need;
  h->count += 1;
  pthread_cond_signal(&h->not_empty);
  return true;
}

bool QueueCore::get(std::string& item, std::optional<Duration> timeout) {
  Header* h = header();
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (timeout) deadline = std::chrono::steady_clock::now() + *timeout;
  Lock lock(&h->mu);
  while (h->count == 0) {
    if (h->closed) throw QueueClosed("celeriac::mp::Queue::get: the queue is closed and empty");
    if (deadline && std::chrono::steady_clock::now() >= *deadline) return false;
    wait(&h->not_empty, &h->mu, deadline);
  }
  std::uint32_t len;
  copy_out(h->ring(), h->capacity, h->head, &len, sizeof len);
  item.resize(len);
  copy_out(h->ring(), h->capacity, h->head + sizeof len, item.data(), len);
  std::uint64_t n = sizeof len + len;
  h->head = (h->head + n) % h->capacity;
  h->used -= n;
  h->count -= 1;
  pthread_cond_broadcast(&h->not_full);  // items differ in size: let every putter re-check
  return true;
}

void QueueCore::close() {
  Header* h = header();
  Lock lock(&h->mu);
  h->closed = 1;
  pthread_cond_broadcast(&h->not_empty);
  pthread_cond_broadcast(&h->not_full);
}

bool QueueCore::closed() const {
  Header* h = header();
  Lock lock(&h->mu);
  return h->closed != 0;
}

std::size_t QueueCore::size() const {
  Header* h = header();
  Lock lock(&h->mu);
  return h->count;
}

std::size_t QueueCore::maxsize() const {
  return header()->maxsize;
}
std::size_t QueueCore::capacity_bytes() const {
  return header()->capacity;
}

}  // namespace celeriac::mp::detail
