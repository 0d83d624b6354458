// Starts a process pool whose workers sleep, prints "<fork server pid>
// <worker pids...>" and waits to be killed. test_orphans SIGKILLs it and
// checks that none of those processes survives.
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "celeriac/mp.hpp"

int nap(int s) {
  ::sleep(static_cast<unsigned>(s));
  return s;
}

int main() {
  celeriac::mp::init();
  celeriac::mp::ProcessPool pool(3);
  std::vector<celeriac::Future<int>> running;
  for (int i = 0; i < 3; ++i) running.push_back(pool.submit(&nap, 60));
  celeriac::mp::Process p(&nap, 60);
  p.start();
  std::printf("%d %d", static_cast<int>(celeriac::mp::fork_server_pid()),
              static_cast<int>(p.pid()));
  for (pid_t w : pool.pids()) std::printf(" %d", static_cast<int>(w));
  std::printf("\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 1;
}
