"""Python side of bench_aio_core: asyncio or uvloop, one scenario per run.

usage: bench_aio_core.py {asyncio|uvloop} {sleep|spawn|post} N
Prints one line: seconds bytes_per_task (0 when not measured).
"""
import asyncio
import random
import sys
import threading
import time


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def scenario_sleep(n):
    rng = random.Random(42)
    t0 = time.perf_counter()
    before = rss_bytes()
    tasks = [asyncio.create_task(asyncio.sleep(rng.uniform(0, 1.0))) for _ in range(n)]
    await asyncio.sleep(0)
    per_task = (rss_bytes() - before) / n
    await asyncio.gather(*tasks)
    return time.perf_counter() - t0, per_task


async def noop():
    pass


async def scenario_spawn(n):
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.create_task(noop())
    return time.perf_counter() - t0, 0


async def scenario_post(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = [0]

    def cb():
        count[0] += 1
        if count[0] == n:
            done.set_result(None)

    def producer():
        for _ in range(n):
            loop.call_soon_threadsafe(cb)

    t0 = time.perf_counter()
    th = threading.Thread(target=producer)
    th.start()
    await done
    elapsed = time.perf_counter() - t0
    th.join()
    return elapsed, 0


def main():
    flavour, scenario, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if flavour == "uvloop":
        import uvloop
        uvloop.install()
    fn = {"sleep": scenario_sleep, "spawn": scenario_spawn, "post": scenario_post}[scenario]
    secs, per_task = asyncio.run(fn(n))
    print(f"{secs:.6f} {per_task:.1f}")


if __name__ == "__main__":
    main()
