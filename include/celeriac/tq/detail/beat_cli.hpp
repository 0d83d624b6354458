// The `beat` verb of App::main() and the `-B` option of `worker`
// (src/tq/beat/beat_cli.cpp), kept out of cli.cpp.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "celeriac/tq/beat.hpp"

namespace CLI {
class App;
}

namespace celeriac::tq {
class App;
}

namespace celeriac::tq::detail {

/// Options of `beat` (and of the beat a `worker -B` embeds).
struct BeatCliOptions {
  std::vector<std::string> schedule_files;  ///< --schedule FILE (repeatable)
  double lease = 5.0;                       ///< --lease seconds
  double renew = 1.0;                       ///< --renew seconds
  double starting_deadline = -1;            ///< --starting-deadline seconds (<0 = none)
  std::string instance;                     ///< --instance id
  std::string name = "celeriac.beat";       ///< --name (store namespace)
  bool list = false;            ///< --list / --status / `status` / `list`: show state, do not run
  CLI::App* command = nullptr;  ///< the parsed `beat` subcommand
};

/// Adds the `beat` subcommand to `cli`; its values land in `o`.
void add_beat_command(CLI::App& cli, BeatCliOptions& o);
/// Adds -B/--beat and the beat options to a `worker` subcommand.
void add_worker_beat_options(CLI::App& worker, bool& embed, BeatCliOptions& o);
/// Runs `beat` (until SIGINT/SIGTERM) or prints its status (--list); returns the exit code.
int run_beat_command(tq::App& app, const BeatCliOptions& o);
/// The Beat a `worker -B` runs beside its consumer (started by the caller).
std::unique_ptr<Beat> make_cli_beat(tq::App& app, const BeatCliOptions& o);

}  // namespace celeriac::tq::detail
