"""Python Celery client driven by the celeriac interop tests.

usage: celeriac_client.py CALLS_JSON
CALLS_JSON is a list of {"name", "args", "kwargs", "options", "timeout"}.
All calls are sent first, then every result is awaited; prints one JSON line:
a list of outcomes {"id", "state", "result"} or, for errors,
{"id", "state", "exc_type", "exc_module", "exc_args"}.
"options" are passed to send_task (countdown, expires, priority, queue...).
"""
import datetime
import json
import sys
import time

from celeriac_test_tasks import app


def outcome(res, timeout):
    out = {"id": res.id}
    try:
        value = res.get(timeout=timeout, propagate=True)
        out["state"] = res.state
        out["result"] = value
    except Exception as exc:  # noqa: BLE001 - the test wants every error
        out["state"] = res.state
        out["exc_type"] = type(exc).__name__
        out["exc_module"] = type(exc).__module__
        out["exc_args"] = [a if isinstance(a, (int, float, str, list, dict, type(None))) else repr(a)
                           for a in exc.args]
    return out


def main():
    calls = json.loads(sys.argv[1])
    sent = []
    for c in calls:
        opts = dict(c.get("options", {}))
        if "expires_in" in opts:  # seconds from now (negative = already expired)
            when = time.time() + opts.pop("expires_in")
            opts["expires"] = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
        sent.append((app.send_task(c["name"], args=c.get("args", []), kwargs=c.get("kwargs", {}), **opts),
                     c.get("timeout", 10)))
    print(json.dumps([outcome(r, t) for r, t in sent]), flush=True)


if __name__ == "__main__":
    main()
