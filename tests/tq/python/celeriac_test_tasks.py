"""Python Celery tasks the celeriac interop tests run against.

The broker and backend come from the environment (CELERIAC_TEST_BROKER,
CELERIAC_TEST_BACKEND) so each test points them at its own redis-server.
Task names use the "tasks." prefix the C++ test app registers too, so a
Python and a C++ worker can share one queue; "tasks.whoami" tells them apart.
"""
import os

from celery import Celery

broker = os.environ.get("CELERIAC_TEST_BROKER", "redis://127.0.0.1:6379/0")
backend = os.environ.get("CELERIAC_TEST_BACKEND", broker)
# The AMQP interop tests keep results in Redis while the broker is RabbitMQ.
backend = os.environ.get("CELERIAC_TEST_RESULT_BACKEND") or backend

app = Celery("celeriac_test_tasks", broker=broker, backend=backend)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    broker_transport_options={"visibility_timeout": int(os.environ.get("CELERIAC_TEST_VT", "3600"))},
)
if os.environ.get("CELERIAC_TEST_BROKER_CA"):  # amqps://: TLS verified against this CA
    import ssl

    app.conf.broker_use_ssl = {"ca_certs": os.environ["CELERIAC_TEST_BROKER_CA"],
                               "cert_reqs": ssl.CERT_REQUIRED}
if os.environ.get("CELERIAC_TEST_MAX_PRIORITY"):  # RabbitMQ priority queues (x-max-priority)
    app.conf.task_queue_max_priority = int(os.environ["CELERIAC_TEST_MAX_PRIORITY"])


@app.task(name="tasks.add")
def add(x, y):
    return x + y


@app.task(name="tasks.mul")
def mul(x, y):
    return x * y


@app.task(name="tasks.echo")
def echo(value):
    return value


@app.task(name="tasks.fail")
def fail(message="boom"):
    raise ValueError(message)


@app.task(name="tasks.type_error")
def type_error():
    raise TypeError("wrong type in python")


@app.task(name="tasks.whoami")
def whoami():
    return "py"


@app.task(name="tasks.noop", ignore_result=True)
def noop():
    return None


@app.task(name="tasks.noop_result")
def noop_result():
    return None


@app.task(bind=True, name="tasks.retry_twice", max_retries=5)
def retry_twice(self, value):
    """Retries twice (countdown 0), then returns [value, retries]."""
    if self.request.retries < 2:
        raise self.retry(countdown=0)
    return [value, self.request.retries]


@app.task(name="tasks.mark")
def mark(token):
    """Records that the Python side ran `token` (RPUSH celeriac.test.done)."""
    app.backend.client.rpush("celeriac.test.done", "py:" + str(token))
    return "py"


@app.task(name="tasks.sleep")
def sleep(seconds):
    import time
    time.sleep(seconds)
    return seconds


@app.task(bind=True, name="tasks.beat_mark")
def beat_mark(self, tag="beat"):
    """Records the beat slot it was sent for (RPUSH celeriac.test.beat.<tag>)."""
    slot = getattr(self.request, "celeriac_beat_slot", None)
    app.backend.client.rpush("celeriac.test.beat." + tag, str(slot))
    return slot


@app.task(name="tasks.xsum")
def xsum(values):
    """Canvas tests: the sum of a chord header's results."""
    return sum(values)
