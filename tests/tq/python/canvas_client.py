"""Python Celery client building canvas workflows for the celeriac canvas tests.

usage: canvas_client.py SCENARIO [SCENARIO...]
Sends each scenario's workflow (tasks by name, so whichever worker serves the
queue runs them), waits for it and prints one JSON line: {scenario: outcome}.
An outcome is {"state", "result"} or {"state", "exc_type", "exc_args"}, plus
scenario-specific fields (parents, children, errback results).
"""
import json
import time
import sys

from celery import chain, chord, group
from celery.canvas import chunks, xmap, xstarmap
from celery.result import AsyncResult, GroupResult

from celeriac_test_tasks import app

TIMEOUT = 60


def s(name, *args, **opts):
    return app.signature(name, args=args, **opts)


def si(name, *args):
    return app.signature(name, args=args, immutable=True)


READY = ("SUCCESS", "FAILURE", "REVOKED")


def outcome(res):
    out = {"id": res.id}
    try:
        out["result"] = res.get(timeout=TIMEOUT, propagate=True)
        out["state"] = res.state
    except Exception as exc:  # noqa: BLE001 - the test wants every error
        # get() follows parents: a failed parent raises before the worker has
        # stored the same FAILURE on this id (Celery stores it right after the
        # failing task's own), so wait for this id's state to be ready
        deadline = time.monotonic() + TIMEOUT
        while res.state not in READY and time.monotonic() < deadline:
            time.sleep(0.02)
        out["state"] = res.state
        out["exc_type"] = type(exc).__name__
        out["exc_args"] = [a if isinstance(a, (int, float, str, list, dict, type(None))) else repr(a)
                           for a in exc.args]
    return out


def parents(res):
    chain_ids, values = [], []
    p = res.parent
    while p is not None:
        chain_ids.append(p.id)
        values.append(p.get(timeout=TIMEOUT))
        p = p.parent
    return values


def scenario(name):
    if name == "chain":
        res = chain(s("tasks.add", 2, 2), s("tasks.mul", 4), s("tasks.add", 1)).apply_async()
        out = outcome(res)
        out["parents"] = parents(res)
        first = AsyncResult(res.parent.parent.id, app=app)
        out["first_children"] = [c.id for c in (first.children or [])]
        out["second_id"] = res.parent.id
        return out
    if name == "chain_immutable":
        return outcome(chain(s("tasks.add", 2, 2), si("tasks.add", 10, 10)).apply_async())
    if name == "link":
        cb = s("tasks.mul", 10)
        res = s("tasks.add", 1, 1).apply_async(link=cb)
        out = outcome(res)
        out["children"] = [c.id for c in (res.children or [])]
        out["callback"] = outcome(AsyncResult(out["children"][0], app=app)) if out["children"] else None
        return out
    if name == "link_error":
        eb = s("tasks.echo").freeze()
        ebsig = s("tasks.echo", task_id=eb.id)
        res = s("tasks.fail", "x").apply_async(link_error=ebsig)
        out = outcome(res)
        out["errback"] = outcome(AsyncResult(eb.id, app=app))
        return out
    if name == "group":
        res = group(s("tasks.add", i, i) for i in range(5)).apply_async()
        return {"state": "SUCCESS", "result": res.get(timeout=TIMEOUT)}
    if name == "chord":
        return outcome(chord([s("tasks.add", i, i) for i in range(5)], s("tasks.xsum")).apply_async())
    if name == "chord_failure":
        eb = s("tasks.echo").freeze()
        body = s("tasks.xsum")
        body.link_error(s("tasks.echo", task_id=eb.id))
        res = chord([s("tasks.add", 1, 1), s("tasks.fail", "hdr")], body).apply_async()
        out = outcome(AsyncResult(res.id, app=app))  # res.get() would raise the header's error first
        out["errback"] = outcome(AsyncResult(eb.id, app=app))
        return out
    if name == "chain_failure":
        res = chain(s("tasks.add", 1, 1), si("tasks.fail", "boom"), s("tasks.add", 1)).apply_async()
        out = outcome(res)
        return out
    if name == "chain_group_chord":  # group | sig inside a chain is upgraded to a chord
        res = chain(s("tasks.add", 1, 1), group(s("tasks.add", 1), s("tasks.add", 2)),
                    s("tasks.xsum")).apply_async()
        return outcome(res)
    if name == "chord_of_chains":
        res = chord([chain(s("tasks.add", 1, 1), s("tasks.mul", 3)), s("tasks.add", 2, 2)],
                    s("tasks.xsum")).apply_async()
        return outcome(res)
    if name == "chord_in_chain":
        res = chain(s("tasks.add", 1, 1), chord([s("tasks.add", 1), s("tasks.add", 2)], s("tasks.xsum")),
                    s("tasks.mul", 10)).apply_async()
        return outcome(res)
    if name == "group_of_chains":
        res = group(chain(s("tasks.add", i, i), s("tasks.mul", 10)) for i in range(3)).apply_async()
        return {"state": "SUCCESS", "result": res.get(timeout=TIMEOUT)}
    if name == "chord_empty":
        return outcome(chord([], s("tasks.xsum")).apply_async())
    if name == "map":
        return outcome(xmap(s("tasks.echo"), [1, "two", [3]]).apply_async())
    if name == "starmap":
        return outcome(xstarmap(s("tasks.add"), [[1, 2], [3, 4]]).apply_async())
    if name == "chunks":
        res = chunks(s("tasks.add"), [[i, i] for i in range(10)], 3).apply_async()
        return {"state": "SUCCESS", "result": res.get(timeout=TIMEOUT)}
    raise SystemExit("unknown scenario " + name)


def main():
    print(json.dumps({n: scenario(n) for n in sys.argv[1:]}), flush=True)


if __name__ == "__main__":
    main()
