// Serialization of task arguments and results between processes, on
// msgpack-cxx (https://github.com/msgpack/msgpack-c, C++ branch).
//
// Standard types work as they are: arithmetic types (not long double),
// std::string, std::vector, std::deque, std::list, std::array, std::map,
// std::unordered_map, std::set, std::unordered_set, std::pair, std::tuple,
// std::optional, std::variant, std::monostate, and nestings of those; byte
// vectors (std::vector<char>, std::vector<unsigned char>) travel as binary.
// celeriac's own SharedMemory, SharedArray<T>, Connection and Queue<T> travel
// as handles (their file descriptor is passed, the memory is not copied).
//
// Customization point for user types:
//   * a struct with MSGPACK_DEFINE(member, ...) (msgpack's macro) just works;
//   * for a type you cannot change, write msgpack adaptors
//     (msgpack::adaptor::pack<T> and convert<T>, see msgpack-cxx's docs) and
//     declare it sendable with
//       template <> struct celeriac::mp::serializable<T> : std::true_type {};
//   * enums: MSGPACK_ADD_ENUM(E) at global scope plus the specialization above.
// Received types must be default constructible (msgpack's convert model).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST 1
#endif
#include <msgpack.hpp>

#include "celeriac/mp/errors.hpp"

namespace celeriac::mp {

/// Specialize as std::true_type to declare a type with hand-written msgpack
/// adaptors sendable between processes.
template <class T>
struct serializable : std::false_type {};

namespace detail {

template <class T>
concept HasMsgpackMembers = requires(const T& t, msgpack::packer<msgpack::sbuffer>& p) {
  t.msgpack_pack(p);
};

template <class T>
struct IsSer : std::bool_constant<(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>) ||
                                  HasMsgpackMembers<T> || serializable<T>::value> {};
template <class T>
inline constexpr bool is_ser_v = IsSer<std::remove_cv_t<T>>::value;

template <>
struct IsSer<std::string> : std::true_type {};
template <>
struct IsSer<std::monostate> : std::true_type {};
template <class T, class A>
struct IsSer<std::vector<T, A>> : std::bool_constant<is_ser_v<T>> {};
template <class T, class A>
struct IsSer<std::deque<T, A>> : std::bool_constant<is_ser_v<T>> {};
template <class T, class A>
struct IsSer<std::list<T, A>> : std::bool_constant<is_ser_v<T>> {};
template <class T, std::size_t N>
struct IsSer<std::array<T, N>> : std::bool_constant<is_ser_v<T>> {};
template <class K, class V, class C, class A>
struct IsSer<std::map<K, V, C, A>> : std::bool_constant<is_ser_v<K> && is_ser_v<V>> {};
template <class K, class V, class H, class E, class A>
struct IsSer<std::unordered_map<K, V, H, E, A>> : std::bool_constant<is_ser_v<K> && is_ser_v<V>> {};
template <class K, class C, class A>
struct IsSer<std::set<K, C, A>> : std::bool_constant<is_ser_v<K>> {};
template <class K, class H, class E, class A>
struct IsSer<std::unordered_set<K, H, E, A>> : std::bool_constant<is_ser_v<K>> {};
template <class A, class B>
struct IsSer<std::pair<A, B>> : std::bool_constant<is_ser_v<A> && is_ser_v<B>> {};
template <class... T>
struct IsSer<std::tuple<T...>> : std::bool_constant<(is_ser_v<T> && ...)> {};
template <class T>
struct IsSer<std::optional<T>> : std::bool_constant<is_ser_v<T>> {};
template <class... T>
struct IsSer<std::variant<T...>> : std::bool_constant<(is_ser_v<T> && ...)> {};

// File descriptors that travel with the message being packed or unpacked
// (SharedMemory, Connection, Queue are sent as descriptors over a Unix
// socket). Packing dups each descriptor into *tls_out_fds; unpacking takes
// ownership of the received ones from *tls_in_fds.
inline thread_local std::vector<int>* tls_out_fds = nullptr;
inline thread_local std::vector<int>* tls_in_fds = nullptr;

/// Dups `fd` into the outgoing message; returns its index there.
int attach_fd(int fd);
/// Takes ownership of received descriptor number `index`.
int take_fd(int index);

/// Closes the descriptors and empties the list.
void close_fds(std::vector<int>& fds) noexcept;

/// Sets the descriptor lists for the duration of a pack/unpack.
class FdScope {
 public:
  FdScope(std::vector<int>* out, std::vector<int>* in)
      : old_out_(tls_out_fds), old_in_(tls_in_fds) {
    tls_out_fds = out;
    tls_in_fds = in;
  }
  ~FdScope() {
    tls_out_fds = old_out_;
    tls_in_fds = old_in_;
  }
  FdScope(const FdScope&) = delete;
  FdScope& operator=(const FdScope&) = delete;

 private:
  std::vector<int>* old_out_;
  std::vector<int>* old_in_;
};

[[noreturn]] void throw_serialization_error(const char* what, const char* type);

}  // namespace detail

/// True for types that can be sent to and from a child process.
template <class T>
concept Serializable = detail::is_ser_v<T>;

/// Packs `value` (msgpack) at the end of `out`.
template <Serializable T>
void pack(msgpack::sbuffer& out, const T& value) {
  msgpack::pack(out, value);
}

/// Unpacks a T from msgpack bytes; SerializationError when they hold
/// something else.
template <Serializable T>
T unpack(std::string_view bytes) {
  try {
    // Strings and binaries are read in place (converting them to T copies
    // them once): large byte arrays are not copied twice.
    auto in_place = [](msgpack::type::object_type, std::size_t, void*) { return true; };
    // Every element takes at least one byte: a header claiming more elements
    // (or a longer string) than there are bytes is rejected before msgpack
    // allocates for the claim.
    const std::size_t n = bytes.size();
    msgpack::unpack_limit limit(n, n, n, n, n, 1000);
    msgpack::object_handle oh =
        msgpack::unpack(bytes.data(), bytes.size(), in_place, nullptr, limit);
    return oh.get().as<T>();
  } catch (const SerializationError&) {
    throw;
  } catch (const std::exception& e) {
    detail::throw_serialization_error(e.what(), typeid(T).name());
  }
}

}  // namespace celeriac::mp

// std::variant and std::monostate adaptors (msgpack-cxx ships boost::variant only):
// a variant travels as [index, value].
namespace msgpack {
MSGPACK_API_VERSION_NAMESPACE(MSGPACK_DEFAULT_API_NS) {
  namespace adaptor {

  template <>
  struct pack<std::monostate> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const std::monostate&) const {
      o.pack_nil();
      return o;
    }
  };
  template <>
  struct convert<std::monostate> {
    const msgpack::object& operator()(const msgpack::object& o, std::monostate&) const {
      if (o.type != msgpack::type::NIL) throw msgpack::type_error();
      return o;
    }
  };

  template <class... T>
  struct pack<std::variant<T...>> {
    template <class Stream>
    packer<Stream>& operator()(packer<Stream>& o, const std::variant<T...>& v) const {
      o.pack_array(2);
      o.pack(static_cast<std::uint32_t>(v.index()));
      std::visit([&](const auto& x) { o.pack(x); }, v);
      return o;
    }
  };
  template <class... T>
  struct convert<std::variant<T...>> {
    const msgpack::object& operator()(const msgpack::object& o, std::variant<T...>& v) const {
      if (o.type != msgpack::type::ARRAY || o.via.array.size != 2) throw msgpack::type_error();
      auto index = o.via.array.ptr[0].as<std::uint32_t>();
      if (index >= sizeof...(T)) throw msgpack::type_error();
      set<0>(index, o.via.array.ptr[1], v);
      return o;
    }

   private:
    template <std::size_t I>
    static void set(std::uint32_t index, const msgpack::object& o, std::variant<T...>& v) {
      if constexpr (I < sizeof...(T)) {
        if (index == I) {
          v.template emplace<I>(o.as<std::variant_alternative_t<I, std::variant<T...>>>());
        } else {
          set<I + 1>(index, o, v);
        }
      }
    }
  };

  }  // namespace adaptor
}
}  // namespace msgpack
