// The seed's first snippet in C++: start a thread that does some work, then
// wait for it. Python:
//
//     def worker():
//         print("Thread is working")
//     t = threading.Thread(target=worker)
//     t.start()
//     t.join()
//
// celeriac::sync::Thread also names the OS thread, so it shows as "worker" in
// `top -H`, `ps -L` and gdb's `info threads`.
#include <cstdio>

#include "celeriac/sync.hpp"

int main() {
  celeriac::sync::Thread t([] { std::puts("Thread is working"); }, "worker");
  t.start();
  t.join();
  return 0;
}
