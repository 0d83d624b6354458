// How an EntryState is written in a store: {"last_run_at": ISO-8601 UTC,
// "total_run_count": n} (RedBeat's meta field names).
#pragma once

#include <string>

#include "celeriac/tq/beat_store.hpp"

namespace celeriac::tq::detail {

/// The stored JSON of a state.
std::string encode_entry_state(const EntryState& s);
/// Parses a stored state; a malformed one reads as "never run" (and is logged).
EntryState decode_entry_state(const std::string& name, const std::string& text);

}  // namespace celeriac::tq::detail
