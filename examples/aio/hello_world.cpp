// The two first snippets of Python's asyncio documentation, in C++.
//
//   async def main():                      # 1: a task that prints, sleeps
//       print('Hello ...')                 #    one second, and prints
//       await asyncio.sleep(1)
//       print('... World!')
//   asyncio.run(main())
//
//   async def say_after(delay, what):      # 2: two tasks sleeping at the
//       await asyncio.sleep(delay)         #    same time: 2 s in all, not 3
//       print(what)
//   async def main():
//       task1 = asyncio.create_task(say_after(1, 'hello'))
//       task2 = asyncio.create_task(say_after(2, 'world'))
//       await task1
//       await task2
#include <chrono>
#include <cstdio>
#include <string>

#include "celeriac/aio.hpp"

using namespace celeriac;
using namespace std::chrono_literals;

aio::Task<void> hello_world() {
  std::puts("Hello ...");
  std::fflush(stdout);
  co_await aio::sleep(1s);
  std::puts("... World!");
}

aio::Task<void> say_after(aio::Duration delay, std::string what) {
  co_await aio::sleep(delay);
  std::puts(what.c_str());
}

aio::Task<void> two_tasks() {
  aio::EventLoop& loop = aio::EventLoop::current();
  auto started = loop.time();
  auto task1 = aio::create_task(say_after(1s, "hello"));
  auto task2 = aio::create_task(say_after(2s, "world"));
  co_await task1;
  co_await task2;
  std::printf("finished in %.1f s\n", std::chrono::duration<double>(loop.time() - started).count());
}

int main() {
  aio::run(hello_world());
  aio::run(two_tasks());
  return 0;
}
