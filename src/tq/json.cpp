#include "celeriac/tq/json.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>

#include "celeriac/tq/errors.hpp"

namespace celeriac::tq {
namespace {

// The NaN/Infinity pre-pass rewrites the bare tokens to number literals that
// underflow to a finite zero (nlohmann rejects overflowing literals before a
// SAX handler sees them); the SAX handler tells them apart by their exact
// text. The exponent is made longer than any "e-999..." run in the input, so
// a genuine number in the input can never be mistaken for a marker.
struct NonFiniteMarks {
  std::string nan, inf, neg_inf;
};

NonFiniteMarks marks_for(std::string_view in) {
  std::string exponent = "e-99999999";
  while (in.find(exponent) != std::string_view::npos) exponent.push_back('9');
  return {"1" + exponent, "2" + exponent, "-2" + exponent};
}

// Rewrites bare NaN / Infinity / -Infinity outside strings. Returns false
// (and leaves `out` empty) when there are none.
bool rewrite_non_finite(std::string_view in, std::string& out, NonFiniteMarks& marks) {
  if (in.find("NaN") == std::string_view::npos && in.find("Infinity") == std::string_view::npos)
    return false;
  marks = marks_for(in);
  bool changed = false;
  bool in_string = false;
  out.reserve(in.size() + 16);
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < in.size()) {
        out.push_back(in[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
      out.push_back(c);
    } else if (c == 'N' && in.substr(i, 3) == "NaN") {
      out += marks.nan;
      i += 2;
      changed = true;
    } else if (c == 'I' && in.substr(i, 8) == "Infinity") {
      out += marks.inf;
      i += 7;
      changed = true;
    } else if (c == '-' && in.substr(i, 9) == "-Infinity") {
      out += marks.neg_inf;
      i += 8;
      changed = true;
    } else {
      out.push_back(c);
    }
  }
  if (!changed) out.clear();
  return changed;
}

template <class J>
class NonFiniteSax : public nlohmann::detail::json_sax_dom_parser<J> {
 public:
  using Base = nlohmann::detail::json_sax_dom_parser<J>;
  NonFiniteSax(J& result, const NonFiniteMarks& marks) : Base(result, true), marks_(&marks) {}
  bool number_float(typename J::number_float_t val, const typename J::string_t& s) {
    if (s == marks_->nan) {
      val = std::nan("");
    } else if (s == marks_->inf) {
      val = HUGE_VAL;
    } else if (s == marks_->neg_inf) {
      val = -HUGE_VAL;
    }
    return Base::number_float(val, s);
  }

 private:
  const NonFiniteMarks* marks_;
};

template <class J>
J parse(std::string_view text) {
  std::string rewritten;
  NonFiniteMarks marks;
  bool special = rewrite_non_finite(text, rewritten, marks);
  std::string_view src = special ? std::string_view(rewritten) : text;
  try {
    if (!special) return J::parse(src.begin(), src.end());
    J result;
    NonFiniteSax<J> sax(result, marks);
    J::sax_parse(src.begin(), src.end(), &sax);
    return result;
  } catch (const nlohmann::json::exception& e) {
    std::string msg = "invalid JSON: ";
    msg += e.what();
    throw MessageError(msg);
  }
}

constexpr char kHex[] = "0123456789abcdef";

void put_u(std::string& out, unsigned v) {
  out += "\\u";
  out.push_back(kHex[(v >> 12) & 0xF]);
  out.push_back(kHex[(v >> 8) & 0xF]);
  out.push_back(kHex[(v >> 4) & 0xF]);
  out.push_back(kHex[v & 0xF]);
}

template <class J>
void dump_value(std::string& out, const J& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      out += "null";
      break;
    case nlohmann::json::value_t::boolean:
      out += v.template get<bool>() ? "true" : "false";
      break;
    case nlohmann::json::value_t::number_integer:
      out += std::to_string(v.template get<std::int64_t>());
      break;
    case nlohmann::json::value_t::number_unsigned:
      out += std::to_string(v.template get<std::uint64_t>());
      break;
    case nlohmann::json::value_t::number_float: {
      double d = v.template get<double>();
      if (std::isnan(d)) {
        out += "NaN";
      } else if (std::isinf(d)) {
        out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        out += v.dump();
      }
      break;
    }
    case nlohmann::json::value_t::string:
      dump_string(out, v.template get_ref<const typename J::string_t&>());
      break;
    case nlohmann::json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v) {
        if (!first) out += ", ";
        first = false;
        dump_value(out, e);
      }
      out.push_back(']');
      break;
    }
    case nlohmann::json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        dump_string(out, it.key());
        out += ": ";
        dump_value(out, it.value());
      }
      out.push_back('}');
      break;
    }
    case nlohmann::json::value_t::binary:
      out += "null";
      break;
  }
}

}  // namespace

Json loads(std::string_view text) {
  return parse<Json>(text);
}
OrderedJson loads_ordered(std::string_view text) {
  return parse<OrderedJson>(text);
}

void dump_string(std::string& out, std::string_view s) {
  out.push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            if (c == 0x7F) {
              out.push_back(static_cast<char>(c));
            } else {
              put_u(out, c);
            }
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; invalid bytes become U+FFFD.
    unsigned cp = 0xFFFD;
    std::size_t len = 1;
    if ((c & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80) {
      cp = ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      len = 2;
      if (cp < 0x80) cp = 0xFFFD;
    } else if ((c & 0xF0) == 0xE0 && i + 2 < n && (p[i + 1] & 0xC0) == 0x80 &&
               (p[i + 2] & 0xC0) == 0x80) {
      cp = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
      len = 3;
      // Overlong forms and UTF-16 surrogates (ED A0..BF xx) are not UTF-8;
      // a lone "\udXXX" escape would make the text unparsable JSON.
      if (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    } else if ((c & 0xF8) == 0xF0 && i + 3 < n && (p[i + 1] & 0xC0) == 0x80 &&
               (p[i + 2] & 0xC0) == 0x80 && (p[i + 3] & 0xC0) == 0x80) {
      cp = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) |
           (p[i + 3] & 0x3Fu);
      len = 4;
      if (cp < 0x10000 || cp > 0x10FFFF) cp = 0xFFFD;
    }
    if (cp >= 0x10000) {
      unsigned v = cp - 0x10000;
      put_u(out, 0xD800 + (v >> 10));
      put_u(out, 0xDC00 + (v & 0x3FF));
    } else {
      put_u(out, cp);
    }
    i += len;
  }
  out.push_back('"');
}

void dumps_to(std::string& out, const Json& value) {
  dump_value(out, value);
}
void dumps_to(std::string& out, const OrderedJson& value) {
  dump_value(out, value);
}

std::string dumps(const Json& value) {
  std::string out;
  dump_value(out, value);
  return out;
}
std::string dumps(const OrderedJson& value) {
  std::string out;
  dump_value(out, value);
  return out;
}

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    unsigned v = p[i] << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (rest == 2) {
    unsigned v = (p[i] << 16) | (p[i + 1] << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::string base64_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size() / 4 * 3);
  unsigned acc = 0;
  int bits = 0;
  bool padding = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      padding = true;
      continue;
    } else if (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
      continue;
    } else {
      throw MessageError("invalid base64: unexpected character '" + std::string(1, c) +
                         "' at offset " + std::to_string(i));
    }
    if (padding)
      throw MessageError("invalid base64: data after '=' padding at offset " + std::to_string(i));
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (bits >= 6) throw MessageError("invalid base64: truncated input");
  return out;
}

}  // namespace celeriac::tq
