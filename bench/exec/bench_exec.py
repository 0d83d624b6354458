"""Python's concurrent.futures.ThreadPoolExecutor on bench_exec's scenarios.

Run by bench_exec (C++), which passes the sizes; prints one JSON object.
(a) and (b) are the same for Python (submit always makes a future).
"""
import json
import math
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait


def empty():
    pass


def post_rate(n, workers):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(workers * 4):
            pool.submit(empty)
        t0 = time.perf_counter()
        for _ in range(n):
            pool.submit(empty)
    return n / (time.perf_counter() - t0)


def future_rate(n, workers):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t0 = time.perf_counter()
        futures = [pool.submit(empty) for _ in range(n)]
        wait(futures)
        rate = n / (time.perf_counter() - t0)
    return rate


def round_trip(n, workers):
    samples = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(100):
            pool.submit(empty).result()
        for _ in range(n):
            t0 = time.perf_counter_ns()
            pool.submit(empty).result()
            samples.append(time.perf_counter_ns() - t0)
    samples.sort()
    return samples[len(samples) // 2], samples[len(samples) * 99 // 100]


def chunk_sum(data, lo, hi):
    s = 0.0
    for i in range(lo, hi):
        s += math.sqrt(data[i])
    return s


def sum_speedup(n, workers):
    data = [float(i) for i in range(n)]
    t0 = time.perf_counter()
    serial = chunk_sum(data, 0, n)
    t_serial = time.perf_counter() - t0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pieces = workers * 8
        step = (n + pieces - 1) // pieces
        t0 = time.perf_counter()
        futures = [pool.submit(chunk_sum, data, lo, min(n, lo + step)) for lo in range(0, n, step)]
        total = sum(f.result() for f in futures)
        t_par = time.perf_counter() - t0
    assert abs(total - serial) <= 1e-6 * abs(serial)
    return t_serial / t_par


def idle_cpu_percent(seconds, workers):
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda _: None, range(workers * 4)))
        time.sleep(0.05)
        c0, t0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        c1, t1 = time.process_time(), time.perf_counter()
    return 100.0 * (c1 - c0) / (t1 - t0)


def main():
    sizes = json.loads(sys.argv[1])
    workers = sizes["workers"]
    out = {}
    out["a"] = post_rate(sizes["a"], workers)
    print("  python (a) done", file=sys.stderr, flush=True)
    out["b"] = future_rate(sizes["b"], workers)
    print("  python (b) done", file=sys.stderr, flush=True)
    out["c"] = round_trip(sizes["c"], workers)
    print("  python (c) done", file=sys.stderr, flush=True)
    out["e"] = sum_speedup(sizes["e"], workers)
    print("  python (e) done", file=sys.stderr, flush=True)
    out["idle"] = idle_cpu_percent(sizes["idle_seconds"], workers)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
