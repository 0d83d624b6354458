// Compiled (-fsyntax-only) once per CASE by ctest: what cannot be sent to a
// child process must be a compile-time error with a message that says why.
// CASE 0 must compile: it proves the harness compiles good code.
#include <functional>
#include <string>

#include "celeriac/mp.hpp"

namespace {
int twice(int x) {
  return 2 * x;
}
struct Opaque {
  int* p = nullptr;
};
Opaque make_opaque() {
  return {};
}
int use_pointer(int* p) {
  return *p;
}
}  // namespace

void cases(celeriac::mp::ProcessPool& pool) {
  int local = 3;
  (void)local;
#if CASE == 0
  (void)pool.submit(&twice, 2);
  (void)pool.submit([](std::string s) { return s.size(); }, std::string("x"));
  celeriac::mp::Process p(&twice, 1);
#elif CASE == 1  // a lambda capturing state that does not exist in the child
  (void)pool.submit([local] { return local; });
#elif CASE == 2  // std::function: type-erased state
  std::function<int(int)> f = &twice;
  (void)pool.submit(f, 1);
#elif CASE == 3  // a raw pointer argument: an address in another process
  (void)pool.submit(&use_pointer, &local);
#elif CASE == 4  // a result type without serialization
  (void)pool.submit(&make_opaque);
#endif
}
