"""A lease per job in the site's KV bucket: who runs it, until when, and once done the
result itself. The revision a worker holds is its fencing token: renewing or completing
is a compare-and-set on that revision, so a worker whose lease was taken over (it stalled
past its lease) can no longer complete, and a job seen ``done`` is never run again: its
stored result is sent instead (guarantee 3)."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
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
    #: Identifies this claim in the stored value: a write whose answer was lost (the
    #: server restarted) is recognised as ours, not as a takeover.
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))


def _value(state: str, worker: str, until: float, nonce: str,
           result: str | None = None) -> bytes:
    body: dict[str, Any] = {"state": state, "worker": worker, "until": until,
                            "nonce": nonce}
    if result is not None:
        body["result"] = result
    return json.dumps(body).encode()


async def claim(kv: KeyValue, key: str, worker: str, ttl: float, *,
                has_actions: bool) -> Claim:
    nonce = secrets.token_hex(8)
    for _ in range(10):
        until = time.time() + ttl
        try:
            revision = await kv.create(key, _value(RUNNING, worker, until, nonce))
            return Claim("mine", revision, nonce=nonce)
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
        if body.get("nonce") == nonce:  # our create went through, its answer was lost
            return Claim("mine", revision, nonce=nonce)
        if float(body.get("until", 0)) > time.time():
            return Claim("held", revision, until=float(body["until"]))
        try:
            revision = await kv.update(key, _value(RUNNING, worker, until, nonce),
                                       last=revision)
        except KeyWrongLastSequenceError:
            continue
        # The previous holder may have changed the host halfway: an action is not retried.
        return Claim("orphaned" if has_actions else "mine", revision, nonce=nonce)
    return Claim("held", until=time.time() + ttl)


async def _write(kv: KeyValue, key: str, c: Claim, value: bytes) -> int:
    """Compare-and-set on the claim's revision. A mismatch is a takeover, unless the
    stored value is still this claim's (an earlier write succeeded, its answer was lost):
    then write again on top of it."""
    try:
        return await kv.update(key, value, last=c.revision)
    except KeyWrongLastSequenceError as exc:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            raise Fenced(key) from exc
        body = json.loads(entry.value or b"{}")
        if body.get("nonce") != c.nonce or body.get("state") != RUNNING:
            raise Fenced(key) from exc
        try:
            return await kv.update(key, value, last=int(entry.revision or 0))
        except KeyWrongLastSequenceError as again:
            raise Fenced(key) from again


async def renew(kv: KeyValue, key: str, worker: str, c: Claim, ttl: float) -> int:
    """Extend the lease; the new revision (also stored in ``c``)."""
    c.revision = await _write(kv, key, c, _value(RUNNING, worker, time.time() + ttl,
                                                 c.nonce))
    return c.revision


async def complete(kv: KeyValue, key: str, worker: str, c: Claim, result: str) -> int:
    """Mark the job done with its result; :class:`Fenced` when it is not ours any more."""
    return await _write(kv, key, c, _value(DONE, worker, 0.0, c.nonce, result))


async def cancel(kv: KeyValue, key: str) -> bool:
    """The hub's way to withdraw a job nobody has claimed (its run ended without it): the
    lease is created done, so a worker that gets the job acks it without running it.
    False when a worker holds it already (or it is done)."""
    try:
        await kv.create(key, _value(DONE, "hub", 0.0, ""))
        return True
    except KeyWrongLastSequenceError:
        return False
