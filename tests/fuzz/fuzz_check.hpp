// A failed property in a fuzz target: print what broke and abort, so
// libFuzzer (or the replay driver under ctest) reports the input.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace celeriac::fuzz {

[[noreturn]] inline void property_failed(std::string_view what) {
  std::fprintf(stderr, "fuzz property failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

/// Aborts with `what` unless `ok`.
inline void check(bool ok, std::string_view what) {
  if (!ok) property_failed(what);
}

}  // namespace celeriac::fuzz
