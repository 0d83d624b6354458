"""The Python Celery side of bench_tq: the client half of each measurement.

usage: celery_bench.py ignore N | results N | rtt N
The worker (tests/tq/python/celeriac_test_tasks.py, solo pool) is started by
bench_tq on the same redis-server. Prints one JSON line with the figures.
"""
import json
import sys
import time

from celeriac_test_tasks import app


def drained():
    client = app.backend.client
    queued = sum(client.llen(k) for k in ("celery", "celery\x06\x163", "celery\x06\x166", "celery\x06\x169"))
    return queued == 0 and client.hlen("unacked") == 0


def bench_ignore(n):
    t0 = time.perf_counter()
    for _ in range(n):
        app.send_task("tasks.noop", ignore_result=True)
    sent = time.perf_counter() - t0
    while not drained():
        time.sleep(0.002)
    total = time.perf_counter() - t0
    return {"tasks": n, "seconds": total, "rate": n / total, "send_rate": n / sent}


def bench_results(n):
    t0 = time.perf_counter()
    results = [app.send_task("tasks.noop_result") for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    total = time.perf_counter() - t0
    return {"tasks": n, "seconds": total, "rate": n / total}


def bench_rtt(n):
    app.send_task("tasks.noop_result").get(timeout=30)  # warm the connections
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        app.send_task("tasks.noop_result").get(timeout=30)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"tasks": n, "p50_ms": 1000 * lat[len(lat) // 2],
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))]}


def main(benches=None):
    """Runs the mode named on the command line; `benches` overrides modes
    (celery_amqp_bench.py passes its RabbitMQ versions)."""
    table = {"ignore": bench_ignore, "results": bench_results, "rtt": bench_rtt}
    table.update(benches or {})
    mode, n = sys.argv[1], int(sys.argv[2])
    print(json.dumps(table[mode](n)), flush=True)


if __name__ == "__main__":
    main()
