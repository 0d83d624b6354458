"""The Python Celery client half of bench_canvas.

usage: celery_canvas_bench.py chord N | chain N
Builds a chord of N tasks.add header tasks + tasks.xsum body, or a chain of
N tasks.add steps, by name, and times apply_async() to the final result
(whichever worker serves the queue). Prints one JSON line.
"""
import json
import sys
import time

from celery import chain, chord

from celeriac_test_tasks import app


def s(name, *args):
    return app.signature(name, args=args)


def main():
    mode, n = sys.argv[1], int(sys.argv[2])
    s("tasks.add", 1, 1).apply_async().get(timeout=60)  # warm the connections
    t0 = time.perf_counter()
    if mode == "chord":
        value = chord([s("tasks.add", i, 0) for i in range(n)], s("tasks.xsum")).apply_async().get(timeout=600)
        expected = n * (n - 1) // 2
    else:
        value = chain(s("tasks.add", 0, 0), *[s("tasks.add", 1) for _ in range(n - 1)]).apply_async().get(timeout=600)
        expected = n - 1
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": mode, "n": n, "seconds": seconds, "ok": value == expected}), flush=True)


if __name__ == "__main__":
    main()
