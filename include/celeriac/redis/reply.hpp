// One RESP reply from Redis, as an owning value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace celeriac::redis {

/// A Redis reply: a bulk/simple string, an integer, nil, an array of
/// replies, or an error. Built from hiredis' reply objects.
class Reply {
 public:
  /// RESP2 reply kinds.
  enum class Type { String, Array, Integer, Nil, Status, Error };

  Reply() = default;
  /// A reply of the given type holding `text` (String/Status/Error).
  static Reply make_string(Type t, std::string text);
  /// An integer reply.
  static Reply make_integer(long long v);
  /// An array reply.
  static Reply make_array(std::vector<Reply> elements);

  /// The reply's kind.
  Type type() const { return type_; }
  /// True for a nil bulk string or nil array (missing key, BRPOP timeout...).
  bool is_nil() const { return type_ == Type::Nil; }
  /// True for an error reply (-ERR ...).
  bool is_error() const { return type_ == Type::Error; }
  /// True for a bulk string reply.
  bool is_string() const { return type_ == Type::String; }
  /// True for an array reply.
  bool is_array() const { return type_ == Type::Array; }
  /// True for an integer reply.
  bool is_integer() const { return type_ == Type::Integer; }
  /// The text of a String, Status or Error reply; throws ProtocolError otherwise.
  const std::string& str() const;
  /// The value of an Integer reply; throws ProtocolError otherwise.
  long long integer() const;
  /// The elements of an Array reply (empty for Nil); throws ProtocolError otherwise.
  const std::vector<Reply>& elements() const;
  /// Element `i` of an array reply (bounds-checked).
  const Reply& operator[](size_t i) const;
  /// Number of elements of an array reply (0 for anything else).
  size_t size() const { return type_ == Type::Array ? elements_.size() : 0; }
  /// A short human-readable rendering, for logs and error messages.
  std::string describe() const;

 private:
  Type type_ = Type::Nil;
  long long integer_ = 0;
  std::string str_;
  std::vector<Reply> elements_;
};

}  // namespace celeriac::redis
