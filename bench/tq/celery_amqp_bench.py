"""The Python Celery client half of bench_amqp (RabbitMQ broker, Redis results).

usage: celery_amqp_bench.py ignore N | results N | rtt N
The worker (tests/tq/python/celeriac_test_tasks.py) is started by bench_amqp
on the same rabbitmq-server; the broker comes from CELERIAC_TEST_BROKER and
the results from CELERIAC_TEST_RESULT_BACKEND. Prints one JSON line
(celery_bench.main).
"""
import time

import celery_bench  # rtt and the command line are the same as on Redis
from celeriac_test_tasks import app


def ready_in_queue(conn):
    return conn.default_channel.queue_declare("celery", passive=True).message_count


def bench_ignore(n):
    with app.connection_for_write() as conn:
        t0 = time.perf_counter()
        with app.producer_or_acquire() as producer:
            for _ in range(n):
                app.send_task("tasks.noop", ignore_result=True, producer=producer)
        sent = time.perf_counter() - t0
        while ready_in_queue(conn):
            time.sleep(0.002)
        total = time.perf_counter() - t0
    return {"tasks": n, "seconds": total, "rate": n / total, "send_rate": n / sent}


def bench_results(n):
    t0 = time.perf_counter()
    with app.producer_or_acquire() as producer:
        results = [app.send_task("tasks.noop_result", producer=producer) for _ in range(n)]
    for r in results:
        r.get(timeout=120)
    total = time.perf_counter() - t0
    return {"tasks": n, "seconds": total, "rate": n / total}


if __name__ == "__main__":
    celery_bench.main({"ignore": bench_ignore, "results": bench_results})
