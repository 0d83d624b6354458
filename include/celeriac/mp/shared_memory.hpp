// SharedMemory and SharedArray<T>: memory mapped in several processes at
// once. Sent to a task (as an argument, a result, or through a Pipe), a
// block travels as its file descriptor: the bytes are never copied, the
// receiver maps the same pages.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "celeriac/mp/serialize.hpp"

namespace celeriac::mp {

namespace detail {
struct Mapping;
}

/// A block of shared memory: anonymous (memfd_create; exists while a handle
/// or mapping to it does) or named (shm_open; any process can open it by
/// name until unlink()). A copyable handle: copies share the mapping.
class SharedMemory {
 public:
  /// No block (valid() is false).
  SharedMemory() = default;
  /// An anonymous block of `size` bytes, zero-filled.
  explicit SharedMemory(std::size_t size);
  /// Creates a named block ("/celeriac-demo" or "celeriac-demo");
  /// SystemError if it exists.
  static SharedMemory create(const std::string& name, std::size_t size);
  /// Opens an existing named block; SystemError if there is none.
  static SharedMemory open(const std::string& name);

  /// Whether a mapping is held.
  bool valid() const noexcept { return static_cast<bool>(map_); }
  /// The first byte of the mapping.
  std::byte* data() const noexcept;
  /// The mapping's size in bytes.
  std::size_t size() const noexcept;
  /// The name ("/celeriac-demo"), empty for anonymous blocks.
  const std::string& name() const noexcept;
  /// Removes the name (shm_unlink); mappings stay valid. No-op if anonymous.
  void unlink();
  /// The descriptor of the block (owned by the handle).
  int fd() const noexcept;

  /// Internal: adopts a received descriptor (maps it, or reuses an existing
  /// mapping of the same block in this process).
  static SharedMemory from_fd(int fd, std::string name);

 private:
  explicit SharedMemory(std::shared_ptr<detail::Mapping> m) : map_(std::move(m)) {}
  std::shared_ptr<detail::Mapping> map_;
};

/// `n` elements of a trivially copyable T in shared memory. Pass it to
/// ProcessPool tasks by value: the child sees (and may write) the same
/// elements. Element access is not synchronized between processes.
template <class T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "celeriac::mp::SharedArray<T> needs a trivially copyable T (its bytes are shared "
                "as they are between processes)");

 public:
  /// The element type.
  using value_type = T;
  SharedArray() = default;
  /// `n` zero-initialized elements in a new anonymous block.
  explicit SharedArray(std::size_t n) : mem_(std::max<std::size_t>(n * sizeof(T), 1)), n_(n) {}
  /// Views an existing block as `n` elements (InvalidArgument if too small).
  SharedArray(SharedMemory mem, std::size_t n) : mem_(std::move(mem)), n_(n) {
    if (n * sizeof(T) > mem_.size())
      throw std::invalid_argument("celeriac::mp::SharedArray: block of " +
                                  std::to_string(mem_.size()) + " bytes is too small for " +
                                  std::to_string(n) + " elements");
  }

  /// The first element.
  T* data() const noexcept { return reinterpret_cast<T*>(mem_.data()); }
  /// Number of elements.
  std::size_t size() const noexcept { return n_; }
  /// Whether it holds no element.
  bool empty() const noexcept { return n_ == 0; }
  /// Element `i` (unchecked).
  T& operator[](std::size_t i) const noexcept { return data()[i]; }
  /// The first element, for range-for.
  T* begin() const noexcept { return data(); }
  /// Past the last element.
  T* end() const noexcept { return data() + n_; }
  /// The elements as a span.
  std::span<T> span() const noexcept { return {data(), n_}; }
  /// The shared memory holding the elements.
  const SharedMemory& memory() const noexcept { return mem_; }

 private:
  SharedMemory mem_;
  std::size_t n_ = 0;
};

template <>
struct serializable<SharedMemory> : std::true_type {};
template <class T>
struct serializable<SharedArray<T>> : std::true_type {};

}  // namespace celeriac::mp

namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {

  // A block travels as [name, descriptor index]; the descriptor itself goes
  // with the message (SCM_RIGHTS).
  template <>
  struct pack<celeriac::mp::SharedMemory> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const celeriac::mp::SharedMemory& m) const {
      o.pack_array(2);
      o.pack(m.name());
      o.pack(m.valid() ? celeriac::mp::detail::attach_fd(m.fd()) : -1);
      return o;
    }
  };
  template <>
  struct convert<celeriac::mp::SharedMemory> {
    const msgpack::object& operator()(const msgpack::object& o,
                                      celeriac::mp::SharedMemory& m) const {
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) throw msgpack::type_error();
      auto name = o.via.array.ptr[0].as<std::string>();
      int index = o.via.array.ptr[1].as<int>();
      m = index < 0 ? celeriac::mp::SharedMemory()
                    : celeriac::mp::SharedMemory::from_fd(celeriac::mp::detail::take_fd(index),
                                                          std::move(name));
      return o;
    }
  };

  template <class T>
  struct pack<celeriac::mp::SharedArray<T>> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const celeriac::mp::SharedArray<T>& a) const {
      o.pack_array(2);
      o.pack(a.memory());
      o.pack(static_cast<std::uint64_t>(a.size()));
      return o;
    }
  };
  template <class T>
  struct convert<celeriac::mp::SharedArray<T>> {
    const msgpack::object& operator()(const msgpack::object& o,
                                      celeriac::mp::SharedArray<T>& a) const {
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) throw msgpack::type_error();
      auto mem = o.via.array.ptr[0].as<celeriac::mp::SharedMemory>();
      auto n = o.via.array.ptr[1].as<std::uint64_t>();
      a = celeriac::mp::SharedArray<T>(std::move(mem), static_cast<std::size_t>(n));
      return o;
    }
  };

  }  // namespace adaptor
}
}  // namespace msgpack
