// The ResultBackend chord/group defaults: backends without chord support
// say so by name instead of silently never firing a chord body.
#include "celeriac/tq/errors.hpp"
#include "celeriac/tq/result_backend.hpp"

namespace celeriac::tq {

namespace {
[[noreturn]] void unsupported(const ResultBackend& b, const char* what) {
  throw BackendError("result backend " + b.url() + " does not support " + what);
}
}  // namespace

void ResultBackend::set_chord_size(std::string_view, std::size_t) {
  unsupported(*this, "chords");
}
std::optional<Json> ResultBackend::add_chord_part(const ChordPart&) {
  unsupported(*this, "chords");
}
void ResultBackend::save_group(std::string_view, const std::vector<std::string>&) {
  unsupported(*this, "saving groups");
}
std::optional<std::vector<std::string>> ResultBackend::restore_group(std::string_view) {
  unsupported(*this, "saving groups");
}
void ResultBackend::forget_group(std::string_view) {
  unsupported(*this, "saving groups");
}

}  // namespace celeriac::tq
