// A shell pipeline run by the event loop:
//
//   printf 'pear\napple\nfig\napple\npear\napple\n' | sort | uniq -c | sort -rn
//
// Four child processes; the loop copies each one's stdout into the next
// one's stdin (the bytes pass through our streams, with back-pressure), then
// reads the result and every exit status (asyncio.create_subprocess_exec).
#include <cstdio>
#include <string>
#include <vector>

#include "celeriac/aio.hpp"

using namespace celeriac;

namespace {

// Copies `from` into `to` until EOF, then closes `to`.
aio::Task<void> pump(aio::StreamReader from, aio::StreamWriter to) {
  for (;;) {
    std::string chunk = co_await from.read(64 * 1024);
    if (chunk.empty()) break;
    to.write(chunk);
    co_await to.drain();
  }
  to.close();
  co_await to.wait_closed();
}

aio::Task<aio::Process> start(std::vector<std::string> argv, bool pipe_stdin) {
  aio::SubprocessOptions o;
  o.stdin_ = pipe_stdin ? aio::Stdio::pipe : aio::Stdio::devnull;
  o.stdout_ = aio::Stdio::pipe;
  std::string program = argv.front();
  argv.erase(argv.begin());
  co_return co_await aio::create_subprocess_exec(program, argv, o);
}

aio::Task<int> pipeline() {
  std::vector<std::vector<std::string>> stages = {
      {"printf", "pear\\napple\\nfig\\napple\\npear\\napple\\n"},
      {"sort"},
      {"uniq", "-c"},
      {"sort", "-rn"},
  };
  std::vector<aio::Process> procs;
  for (std::size_t i = 0; i < stages.size(); ++i)
    procs.push_back(co_await start(stages[i], /*pipe_stdin=*/i > 0));
  std::vector<aio::TaskHandle<void>> pumps;
  for (std::size_t i = 0; i + 1 < procs.size(); ++i)
    pumps.push_back(aio::spawn(pump(procs[i].stdout_(), procs[i + 1].stdin_())));
  std::string result = co_await procs.back().stdout_().read();
  for (auto& p : pumps) co_await p;
  std::fputs(result.c_str(), stdout);
  int failures = 0;
  for (std::size_t i = 0; i < procs.size(); ++i) {
    int code = co_await procs[i].wait();
    std::printf("%s exited with %d\n", stages[i][0].c_str(), code);
    failures += code != 0;
  }
  co_return failures;
}

}  // namespace

int main() {
  return aio::run(pipeline());
}
