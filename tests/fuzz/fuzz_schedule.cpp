// Fuzz target: the beat schedule file (JSON; src/tq/beat/schedule_file.cpp
// and Schedule::from_json), read by `beat --schedule FILE`. Properties:
// parse_schedule returns or throws ConfigError (never anything else); what
// it accepts writes back (to_json) to a file that parses to the same
// entries.
#include <cstddef>
#include <cstdint>
#include <string>

#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/json.hpp"
#include "celeriac/tq/periodic_task.hpp"
#include "fuzz_check.hpp"

using namespace celeriac::tq;
using celeriac::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<PeriodicEntry> entries;
  try {
    entries = parse_schedule(text, "fuzz.json");
  } catch (const ConfigError&) {
    return 0;
  }
  Json doc = Json::object();
  doc["entries"] = Json::array();
  for (const auto& e : entries) doc["entries"].push_back(e.to_json());
  const std::string written = dumps(doc);
  std::vector<PeriodicEntry> again;
  try {
    again = parse_schedule(written, "written.json");
  } catch (const ConfigError& e) {
    celeriac::fuzz::property_failed(std::string("an accepted schedule wrote back a file it "
                                                "rejects: ") +
                                    e.what());
  }
  check(again.size() == entries.size(), "write-back changed the number of entries");
  for (std::size_t i = 0; i < entries.size(); ++i)
    check(dumps(again[i].to_json()) == dumps(entries[i].to_json()), "write-back changed an entry");
  return 0;
}
