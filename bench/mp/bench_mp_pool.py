"""Python peers of bench_mp_pool (run by it under /usr/bin/python3).

Measures concurrent.futures.ProcessPoolExecutor and multiprocessing.Pool
running the same trivial function as the C++ side:
  rt:    sequential submit -> result round trips (p50/p99, microseconds)
  tput:  small tasks submitted one by one, then chunked (tasks per second)
  data:  a bytes object of N MB to a task and back (GB/s, both directions)
Prints "RESULT <name> <value>" lines on stdout, progress on stderr.
Usage: bench_mp_pool.py <rt calls> <one-by-one tasks> <chunked tasks> <MB>
"""
import concurrent.futures as cf
import multiprocessing as mp
import sys
import time


def add(a, b):
    return a + b


def add1(x):
    return x + 1


def identity(b):
    return b


def result(name, value):
    print(f"RESULT {name} {value:.6g}", flush=True)


def progress(msg):
    print(f"  [python] {msg}", file=sys.stderr, flush=True)


def percentiles(samples):
    samples.sort()
    p50 = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return p50 * 1e6, p99 * 1e6


def round_trips(call, n):
    for _ in range(min(200, n)):  # warm up: workers started, code paths hot
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def main():
    rt_n, one_n, chunk_n, mb = (int(a) for a in sys.argv[1:5])
    with cf.ProcessPoolExecutor(1) as ex:
        progress(f"ProcessPoolExecutor: {rt_n} round trips")
        p50, p99 = round_trips(lambda: ex.submit(add, 1, 2).result(), rt_n)
        result("ppe_rt_p50_us", p50)
        result("ppe_rt_p99_us", p99)
    with mp.Pool(1) as pool:
        progress(f"multiprocessing.Pool: {rt_n} round trips")
        p50, p99 = round_trips(lambda: pool.apply(add, (1, 2)), rt_n)
        result("pool_rt_p50_us", p50)
        result("pool_rt_p99_us", p99)

    with cf.ProcessPoolExecutor(2) as ex:
        ex.submit(add, 1, 2).result()
        progress(f"ProcessPoolExecutor: {one_n} tasks one by one")
        t0 = time.perf_counter()
        futures = [ex.submit(add, i, 1) for i in range(one_n)]
        for f in futures:
            f.result()
        result("ppe_one_per_s", one_n / (time.perf_counter() - t0))
        progress(f"ProcessPoolExecutor.map: {chunk_n} tasks, chunksize 1000")
        t0 = time.perf_counter()
        out = list(ex.map(add1, range(chunk_n), chunksize=1000))
        assert len(out) == chunk_n
        result("ppe_chunk_per_s", chunk_n / (time.perf_counter() - t0))
    with mp.Pool(2) as pool:
        pool.apply(add, (1, 2))
        progress(f"multiprocessing.Pool: {one_n} tasks one by one (apply_async)")
        t0 = time.perf_counter()
        handles = [pool.apply_async(add, (i, 1)) for i in range(one_n)]
        for h in handles:
            h.get()
        result("pool_one_per_s", one_n / (time.perf_counter() - t0))
        progress(f"multiprocessing.Pool.map: {chunk_n} tasks, chunksize 1000")
        t0 = time.perf_counter()
        out = pool.map(add1, range(chunk_n), chunksize=1000)
        assert len(out) == chunk_n
        result("pool_chunk_per_s", chunk_n / (time.perf_counter() - t0))

    with cf.ProcessPoolExecutor(1) as ex:
        data = bytes(mb << 20)
        ex.submit(identity, b"x").result()
        progress(f"ProcessPoolExecutor: {mb} MB to a task and back, 3 times")
        best = None
        for _ in range(3):
            t0 = time.perf_counter()
            back = ex.submit(identity, data).result()
            dt = time.perf_counter() - t0
            assert len(back) == len(data)
            best = dt if best is None else min(best, dt)
        result("ppe_data_gbps", 2 * len(data) / best / 1e9)


if __name__ == "__main__":
    main()
