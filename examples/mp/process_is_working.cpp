// The seed's multiprocessing snippet in C++: start a process that does some
// work, then wait for it. Python:
//
//     def worker():
//         print("Process is working")
//     p = multiprocessing.Process(target=worker)
//     p.start()
//     p.join()
//
// The child is forked from celeriac's fork server (started by mp::init(),
// before the program has other threads), so this stays safe in a program
// that already runs threads. The child inherits stdout.
#include <cstdio>

#include "celeriac/mp.hpp"

int main() {
  celeriac::mp::init();
  celeriac::mp::Process p([] { std::puts("Process is working"); });
  p.start();
  p.join();
  return p.exitcode() == 0 ? 0 : 1;
}
