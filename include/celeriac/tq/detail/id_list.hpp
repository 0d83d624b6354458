// Naming many task ids in one error message without making it unbounded.
#pragma once

#include <cstddef>
#include <string>

namespace celeriac::tq::detail {

/// "id1, id2, ..." for the first ten elements of `items` (each named by
/// `id_of(item)`), then " and N more".
template <class Range, class IdOf>
std::string list_ids(const Range& items, IdOf id_of) {
  std::string s;
  std::size_t n = 0;
  for (const auto& item : items) {
    if (n == 10) return s + " and " + std::to_string(items.size() - n) + " more";
    s += (n++ ? ", " : "") + std::string(id_of(item));
  }
  return s;
}

}  // namespace celeriac::tq::detail
