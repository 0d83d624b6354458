// A C++ app for the beat integration tests (`worker -B`): one task that
// returns the beat slot it was sent for, and an entry sending it every second.
#include <chrono>
#include <string>

#include "celeriac/tq.hpp"

namespace tq = celeriac::tq;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  tq::App app;
  app.task("tasks.slot", {}, [](tq::Context& ctx) {
    return ctx.headers().value("celeriac_beat_slot", std::string("no slot header"));
  });
  tq::PeriodicOptions aligned;
  aligned.relative = true;  // slots on whole seconds
  app.add_periodic_task(1s, tq::call("tasks.slot"), "slot-every-second", aligned);
  return app.main(argc, argv);
}
