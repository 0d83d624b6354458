#include "celeriac/redis/reply.hpp"

#include "celeriac/redis/errors.hpp"

namespace celeriac::redis {

namespace {
const char* type_name(Reply::Type t) {
  switch (t) {
    case Reply::Type::String:
      return "string";
    case Reply::Type::Array:
      return "array";
    case Reply::Type::Integer:
      return "integer";
    case Reply::Type::Nil:
      return "nil";
    case Reply::Type::Status:
      return "status";
    case Reply::Type::Error:
      return "error";
  }
  return "?";
}
}  // namespace

Reply Reply::make_string(Type t, std::string text) {
  Reply r;
  r.type_ = t;
  r.str_ = std::move(text);
  return r;
}

Reply Reply::make_integer(long long v) {
  Reply r;
  r.type_ = Type::Integer;
  r.integer_ = v;
  return r;
}

Reply Reply::make_array(std::vector<Reply> elements) {
  Reply r;
  r.type_ = Type::Array;
  r.elements_ = std::move(elements);
  return r;
}

const std::string& Reply::str() const {
  if (type_ != Type::String && type_ != Type::Status && type_ != Type::Error)
    throw ProtocolError(std::string("Redis reply is ") + type_name(type_) + " (" + describe() +
                        "), expected a string");
  return str_;
}

long long Reply::integer() const {
  if (type_ != Type::Integer)
    throw ProtocolError(std::string("Redis reply is ") + type_name(type_) + " (" + describe() +
                        "), expected an integer");
  return integer_;
}

const std::vector<Reply>& Reply::elements() const {
  if (type_ != Type::Array && type_ != Type::Nil)
    throw ProtocolError(std::string("Redis reply is ") + type_name(type_) + " (" + describe() +
                        "), expected an array");
  return elements_;
}

const Reply& Reply::operator[](size_t i) const {
  const auto& e = elements();
  if (i >= e.size())
    throw ProtocolError("Redis array reply has " + std::to_string(e.size()) +
                        " elements, wanted element " + std::to_string(i));
  return e[i];
}

std::string Reply::describe() const {
  switch (type_) {
    case Type::Nil:
      return "(nil)";
    case Type::Integer:
      return "(integer) " + std::to_string(integer_);
    case Type::Error:
      return "(error) " + str_;
    case Type::Status:
      return str_;
    case Type::String: {
      std::string s = str_.size() > 80 ? str_.substr(0, 80) + "..." : str_;
      return "\"" + s + "\"";
    }
    case Type::Array: {
      std::string s = "[";
      for (size_t i = 0; i < elements_.size() && i < 8; ++i)
        s += (i ? ", " : "") + elements_[i].describe();
      if (elements_.size() > 8) s += ", ...";
      return s + "]";
    }
  }
  return "?";
}

}  // namespace celeriac::redis
