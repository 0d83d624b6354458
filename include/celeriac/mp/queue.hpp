// Queue<T>: a bounded, closable FIFO shared by processes (Python's
// multiprocessing.Queue), in shared memory.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "celeriac/mp/serialize.hpp"
#include "celeriac/mp/shared_memory.hpp"

namespace celeriac::mp {

namespace detail {

/// The untyped queue: serialized items in a ring buffer in a shared block,
/// guarded by a process-shared robust mutex (a process that dies holding it
/// does not block the others) and two process-shared condition variables.
class QueueCore {
 public:
  using Duration = std::chrono::steady_clock::duration;
  QueueCore() = default;
  QueueCore(std::size_t maxsize, std::size_t capacity_bytes);
  explicit QueueCore(SharedMemory mem);

  /// Timeout nullopt: wait without limit; zero: do not wait.
  /// put: false on timeout; QueueClosed when closed.
  bool put(std::string_view item, std::optional<Duration> timeout);
  /// get: false on timeout; QueueClosed when closed and drained.
  bool get(std::string& item, std::optional<Duration> timeout);
  void close();
  bool closed() const;
  std::size_t size() const;
  std::size_t maxsize() const;
  std::size_t capacity_bytes() const;
  const SharedMemory& memory() const noexcept { return mem_; }

 private:
  struct Header;
  Header* header() const;
  SharedMemory mem_;
};

}  // namespace detail

/// A multi-producer, multi-consumer queue of T between processes: create it
/// in the parent and pass it to Process / ProcessPool tasks (it travels as
/// a handle to its shared block). Items are serialized (T: Serializable,
/// without descriptors: send a SharedArray through a Pipe instead).
/// Bounded by `maxsize` items (0: no item limit) and by `capacity_bytes` of
/// serialized data. close(): puts fail with QueueClosed, gets drain what is
/// left and then fail with QueueClosed.
template <Serializable T>
class Queue {
 public:
  /// Timeouts of put and get.
  using Duration = std::chrono::steady_clock::duration;
  /// A queue of at most `maxsize` items (0: limited by bytes only) in a
  /// block of `capacity_bytes` (default 1 MiB).
  explicit Queue(std::size_t maxsize = 0, std::size_t capacity_bytes = 1 << 20)
      : core_(maxsize, capacity_bytes) {}
  /// Internal: the queue in a received block.
  explicit Queue(detail::QueueCore core) : core_(std::move(core)) {}

  /// Blocks while full. QueueFull after `timeout`; QueueClosed when closed;
  /// std::invalid_argument when the item alone exceeds the capacity.
  void put(const T& item) { put_impl(item, std::nullopt); }
  /// As put(), waiting at most `timeout` for room (QueueFull).
  void put(const T& item, Duration timeout) { put_impl(item, timeout); }
  /// Never blocks: false when full.
  bool try_put(const T& item) { return core_.put(encode(item), Duration::zero()); }

  /// Blocks while empty. QueueEmpty after `timeout`; QueueClosed when closed
  /// and drained.
  T get() { return get_impl(std::nullopt); }
  /// As get(), waiting at most `timeout` (QueueEmpty).
  T get(Duration timeout) { return get_impl(timeout); }
  /// Never blocks: nullopt when empty.
  std::optional<T> try_get() {
    std::string bytes;
    if (!core_.get(bytes, Duration::zero())) return std::nullopt;
    return unpack<T>(bytes);
  }

  /// Closes the queue: puts fail with QueueClosed; gets drain what is left, then fail.
  void close() { core_.close(); }
  /// Whether close() was called (by any process).
  bool closed() const { return core_.closed(); }
  /// Items in the queue now (a snapshot).
  std::size_t size() const { return core_.size(); }
  /// Whether no item is queued now.
  bool empty() const { return size() == 0; }
  /// The most items it holds (0: no limit).
  std::size_t maxsize() const { return core_.maxsize(); }
  /// The shared ring the queue lives in.
  const detail::QueueCore& core() const noexcept { return core_; }

 private:
  static std::string encode(const T& item) {
    msgpack::sbuffer buf;
    detail::FdScope scope(nullptr, nullptr);  // no descriptors through a queue
    msgpack::pack(buf, item);
    return std::string(buf.data(), buf.size());
  }
  void put_impl(const T& item, std::optional<Duration> timeout) {
    if (!core_.put(encode(item), timeout))
      throw QueueFull("celeriac::mp::Queue::put: queue still full after the timeout");
  }
  T get_impl(std::optional<Duration> timeout) {
    std::string bytes;
    if (!core_.get(bytes, timeout))
      throw QueueEmpty("celeriac::mp::Queue::get: no item within the timeout");
    return unpack<T>(bytes);
  }
  detail::QueueCore core_;
};

template <class T>
struct serializable<Queue<T>> : std::true_type {};

}  // namespace celeriac::mp

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {
  template <class T>
  struct pack<celeriac::mp::Queue<T>> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const celeriac::mp::Queue<T>& q) const {
      o.pack(q.core().memory());
      return o;
    }
  };
  template <class T>
  struct convert<celeriac::mp::Queue<T>> {
    const msgpack::object& operator()(const msgpack::object& o, celeriac::mp::Queue<T>& q) const {
      q = celeriac::mp::Queue<T>(
          celeriac::mp::detail::QueueCore(o.as<celeriac::mp::SharedMemory>()));
      return o;
    }
  };
  }  // namespace adaptor
}
}  // namespace msgpack
