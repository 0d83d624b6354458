// The app binary the chaos scenarios drive (tests/chaos/chaos_test.cpp):
//   chaos_app --broker URL worker ...      a worker (App::main)
//   chaos_app produce URL COUNT BATCH      publishes chaos.mark(0..COUNT-1)
//                                          in batches, printing "published N"
//                                          after each (killed mid-way by a
//                                          scenario); "error: ..." on failure
// Tasks append their number to $CHAOS_JOURNAL (one O_APPEND write each), so
// the test counts executions across worker crashes; chaos.hog also appends
// its process id to $CHAOS_PIDS.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "celeriac/tq.hpp"

namespace tq = celeriac::tq;

namespace {

// Appends `i` to the file named by $`var` (one O_APPEND write).
void journal(int i, const char* var = "CHAOS_JOURNAL") {
  const char* path = std::getenv(var);
  if (!path) return;
  int fd = ::open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line = std::to_string(i) + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

int produce(const std::string& url, int count, int batch) {
  try {
    tq::App app(url, url);
    tq::CallOptions o;
    o.ignore_result = true;
    for (int first = 0; first < count; first += batch) {
      std::vector<tq::TaskMessage> msgs;
      for (int i = first; i < std::min(count, first + batch); ++i)
        msgs.push_back(
            app.build_message("chaos.mark", tq::Json::array({i, 0}), tq::Json::object(), o));
      app.publish_many(msgs);
      std::printf("published %d\n", std::min(count, first + batch));
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "produce")
    return produce(argv[2], std::atoi(argv[3]), std::atoi(argv[4]));
  tq::App app;
  app.task("chaos.mark", {"i", "ms"}, [](int i, int ms) {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    journal(i);
    return i;
  });
  // Touches `mib` MiB (freed on return: the child's peak RSS stays), then
  // journals its number and its child's pid ($CHAOS_PIDS).
  app.task("chaos.hog", {"i", "mib"}, [](int i, int mib) {
    std::vector<char> block(static_cast<std::size_t>(mib) << 20);
    std::memset(block.data(), 1, block.size());
    journal(static_cast<int>(::getpid()), "CHAOS_PIDS");
    journal(i);
    return static_cast<int>(block[block.size() / 2]);
  });
  // Sends a task from inside a task (from a pool child under -P processes).
  app.task("chaos.spawn", {"i"}, [](tq::Context& ctx, int i) {
    tq::CallOptions o;
    o.ignore_result = true;
    ctx.app().send_task("chaos.mark", tq::Json::array({i, 0}), tq::Json::object(), o);
    return i;
  });
  return app.main(argc, argv);
}
