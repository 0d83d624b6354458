// `celeriac`: the generic command line of the task queue, for everything
// that needs no compiled tasks: call (tasks of any worker, C++ or Python),
// result, purge, inspect, status, dead-letters, and beat --schedule FILE
// (periodic tasks for any workers, from a JSON schedule). An app's own binary gets the
// same verbs plus `worker` from App::main().
#include "celeriac/tq/app.hpp"

int main(int argc, char** argv) {
  celeriac::tq::MainOptions options;
  options.with_worker = false;
  options.program = "celeriac";
  celeriac::tq::App app;
  return app.main(argc, argv, options);
}
