"""A lease per job in the site's KV bucket: who runs it, until when, and once done the
result itself. The revision a worker holds is its fencing token: renewing or completing
is a compare-and-set on that revision, so a worker whose lease was taken over (it stalled
past its lease) can no longer complete, and a job seen ``done`` is never run again: its
stored result is sent instead (guarantee 3)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

RUNNING, DONE = "running", "done"


class Fenced(Exception):
    """The lease moved on: another worker holds the job now, or it is done."""


@dataclass
class Claim:
    """The outcome of :func:`claim`: ``mine`` (run it, ``revision`` is the token),
    ``done`` (``result`` holds what to send), ``held`` (another worker until ``until``),
    or ``orphaned`` (a worker died inside a job with actions: ours now, but not to run)."""

    state: str
    revision: int = 0
    until: float = 0.0
    result: str | None = None


def _value(state: str, worker: str, until: float, result: str | None = None) -> bytes:
    body: dict[str, Any] = {"state": state, "worker": worker, "until": until}
    if result is not None:
        body["result"] = result
    return json.dumps(body).encode()


async def claim(kv: KeyValue, key: str, worker: str, ttl: float, *,
                has_actions: bool) -> Claim:
    for _ in range(10):
        until = time.time() + ttl
        try:
            return Claim("mine", await kv.create(key, _value(RUNNING, worker, until)))
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        body = json.loads(entry.value or b"{}")
        revision = int(entry.revision or 0)
        if body.get("state") == DONE:
            return Claim("done", revision, result=body.get("result"))
        if float(body.get("until", 0)) > time.time():
            return Claim("held", revision, until=float(body["until"]))
        try:
            revision = await kv.update(key, _value(RUNNING, worker, until), last=revision)
        except KeyWrongLastSequenceError:
            continue
        # The previous holder may have changed the host halfway: an action is not retried.
        return Claim("orphaned" if has_actions else "mine", revision)
    return Claim("held", until=time.time() + ttl)


async def renew(kv: KeyValue, key: str, worker: str, revision: int, ttl: float) -> int:
    try:
        return await kv.update(key, _value(RUNNING, worker, time.time() + ttl), last=revision)
    except KeyWrongLastSequenceError as exc:
        raise Fenced(key) from exc


async def complete(kv: KeyValue, key: str, worker: str, revision: int, result: str) -> int:
    try:
        return await kv.update(key, _value(DONE, worker, 0.0, result), last=revision)
    except KeyWrongLastSequenceError as exc:
        raise Fenced(key) from exc
