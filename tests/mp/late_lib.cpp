// A library test_mp_pool loads with dlopen() after the fork server started:
// its code does not exist in the children.
extern "C" int late_square(int x) {
  return x * x;
}
