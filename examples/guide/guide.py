#!/usr/bin/python3
"""The Python side of celeriac-guide: the same workloads through threading,
multiprocessing, asyncio, concurrent.futures and Celery. celeriac-guide runs
one row per process:

    guide.py --row NAME --port PORT [--quick] [--redis URL]

and reads the last line, "GUIDE-RESULT <value> <wall seconds>". The sizes and
the prime counting are the same as the C++ rows' (workloads.hpp, cpp_rows.cpp).
"""
import argparse
import asyncio
import concurrent.futures as cf
import http.client
import multiprocessing
import os
import subprocess
import sys
import threading
import time

FULL = dict(requests=1000, waits=10000, delay_ms=20, chunks=64, limit=2_000_000, mixed_fetches=64)
QUICK = dict(requests=20, waits=200, delay_ms=20, chunks=8, limit=20_000, mixed_fetches=8)


# ---- the units of work (the same as cpp_rows.cpp) ----

def count_primes(lo, hi):
    count = 0
    for n in range(max(lo, 2), hi):
        prime = n == 2 or n % 2 != 0
        d = 3
        while prime and d * d <= n:
            if n % d == 0:
                prime = False
            d += 2
        count += prime
    return count


def count_chunk(limit, chunks, index):
    return count_primes(limit * index // chunks, limit * (index + 1) // chunks)


def fetch_blocking(port, i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", f"/{i}", headers={"Connection": "close"})
        r = conn.getresponse()
        return 1 if r.status == 200 and r.read() == str(i).encode() else 0
    finally:
        conn.close()


async def fetch_async(port, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /{i} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    reply = await reader.read()
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    return 1 if head.startswith(b"HTTP/1.1 200") and body == str(i).encode() else 0


def wait_blocking(ms):
    time.sleep(ms / 1000)
    return 1


# ---- the tools ----

def threads_each(n, fn):
    out = [0] * n

    def run(i):
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(out)


def executor_each(executor, n, fn, *args):
    with executor:
        return sum(f.result() for f in [executor.submit(fn, *args, i) for i in range(n)])


def celery_row(s, url, pool, concurrency, name, args_of, n):
    """Starts a Celery worker (guide_celery.py) on the private Redis, waits
    until it answers a ping, then sends n tasks and adds up their results."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, GUIDE_REDIS=url, PYTHONPATH=here)
    node = f"guide{os.getpid()}@localhost"
    queue = f"guide{os.getpid()}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "guide_celery", "worker", "-P", pool, "-c", str(concurrency),
         "-Q", queue, "-n", node, "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-l", "warning"], env=env, cwd=here, stdout=subprocess.DEVNULL)
    try:
        os.environ["GUIDE_REDIS"] = url
        sys.path.insert(0, here)
        import guide_celery
        deadline = time.monotonic() + 120
        while not guide_celery.app.control.ping(destination=[node], timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the Celery worker did not start")
        t0 = time.perf_counter()
        task = getattr(guide_celery, name)
        results = [task.apply_async(args_of(i), queue=queue) for i in range(n)]
        total = sum(r.get(timeout=600) for r in results)
        wall = time.perf_counter() - t0
    finally:
        worker.terminate()  # warm shutdown, then reap (its children's CPU time is counted)
        worker.wait(timeout=120)
    return total, wall


def rows(s, port, redis):
    n, w, ms, chunks, limit = s["requests"], s["waits"], s["delay_ms"], s["chunks"], s["limit"]
    io = lambda i: fetch_blocking(port, i)  # noqa: E731
    cpu = lambda i: count_chunk(limit, chunks, i)  # noqa: E731
    cores = os.cpu_count() or 1

    async def gather_io():
        return sum(await asyncio.gather(*(fetch_async(port, i) for i in range(n))))

    async def gather_waits():
        async def one():
            await asyncio.sleep(ms / 1000)
            return 1
        return sum(await asyncio.gather(*(one() for _ in range(w))))

    async def gather_to_thread():
        return sum(await asyncio.gather(*(asyncio.to_thread(count_chunk, limit, chunks, i)
                                          for i in range(chunks))))

    async def mixed(executor):
        loop = asyncio.get_running_loop()

        async def step(i):
            if await fetch_async(port, i) != 1:
                return -1_000_000_000
            return await loop.run_in_executor(executor, count_chunk, limit, chunks, i % chunks)
        with executor:
            return sum(await asyncio.gather(*(step(i) for i in range(s["mixed_fetches"]))))

    def mp_pool(workers, fn, args):
        with multiprocessing.Pool(workers) as pool:
            return sum(pool.starmap(fn, args))

    return {
        "io.sequential": lambda: sum(io(i) for i in range(n)),
        "io.threads": lambda: threads_each(n, io),
        "io.pool8": lambda: executor_each(cf.ThreadPoolExecutor(8), n, fetch_blocking, port),
        "io.pool64": lambda: executor_each(cf.ThreadPoolExecutor(64), n, fetch_blocking, port),
        "io.asyncio": lambda: asyncio.run(gather_io()),
        "io.procpool": lambda: mp_pool(16, fetch_blocking, [(port, i) for i in range(n)]),
        "io.celery_threads": lambda: celery_row(s, redis, "threads", 64, "fetch", lambda i: (port, i), n),
        "wait.threads": lambda: threads_each(w, lambda i: wait_blocking(ms)),
        "wait.pool64": lambda: executor_each(cf.ThreadPoolExecutor(64), w, lambda ms, i: wait_blocking(ms), ms),
        "wait.asyncio": lambda: asyncio.run(gather_waits()),
        "cpu.sequential": lambda: sum(cpu(i) for i in range(chunks)),
        "cpu.threads": lambda: threads_each(chunks, cpu),
        "cpu.pool": lambda: executor_each(cf.ThreadPoolExecutor(cores), chunks, count_chunk, limit, chunks),
        "cpu.procpool": lambda: executor_each(cf.ProcessPoolExecutor(cores), chunks, count_chunk, limit, chunks),
        "cpu.mp_pool": lambda: mp_pool(cores, count_chunk, [(limit, chunks, i) for i in range(chunks)]),
        "cpu.asyncio_to_thread": lambda: asyncio.run(gather_to_thread()),
        "cpu.celery_prefork": lambda: celery_row(s, redis, "prefork", cores, "count",
                                                 lambda i: (limit, chunks, i), chunks),
        "mixed.asyncio_threads": lambda: asyncio.run(mixed(cf.ThreadPoolExecutor(cores))),
        "mixed.asyncio_procs": lambda: asyncio.run(mixed(cf.ProcessPoolExecutor(cores))),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--row", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--redis", default="")
    a = p.parse_args()
    table = rows(QUICK if a.quick else FULL, a.port, a.redis)
    if a.row not in table:
        sys.exit(f"guide.py: no Python row named '{a.row}' (rows: {', '.join(sorted(table))})")
    t0 = time.perf_counter()
    out = table[a.row]()
    value, wall = out if isinstance(out, tuple) else (out, time.perf_counter() - t0)
    print(f"GUIDE-RESULT {value} {wall:.6f}", flush=True)


if __name__ == "__main__":
    main()
