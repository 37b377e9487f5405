"""50 concurrent triggers on one client: one fix per host at a time, never over the
client cap (leases in SQLite, so the same holds across processes); triggers that waited
behind a fix of their host neither re-apply it nor overrun its budget.

The budgets run on an injected clock that ticks per reading, never on wall time."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from upkeeper import Fix, FixContext, Plan, Result, Status, signature
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.secrets import Redactor
from upkeeper.models import Host
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.spec import Binding, FixSpec
from upkeeper.store.history import History


class _Meter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.per_host: dict[str, int] = {}
        self.client = 0
        self.max_host = 0
        self.max_client = 0
        self.applied = 0


METER = _Meter()


def ticking_clock() -> Callable[[], datetime]:
    """Monotonic, thread-safe and independent of machine speed: +1 ms per reading."""
    start = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    ticks, lock = itertools.count(), threading.Lock()

    def now() -> datetime:
        with lock:
            return start + timedelta(milliseconds=next(ticks))

    return now


class _Slow(Fix[Any]):
    name = "test.slow"
    handles = (signature("test.check"),)
    platforms = ("*",)
    default_tier = "auto"
    needs_window = False
    settle = 0.0

    def plan(self, ctx: FixContext[Any]) -> Plan | None:
        return Plan(f"fix {ctx.host.name}")

    def apply(self, ctx: FixContext[Any], plan: Plan) -> str:
        m, host = METER, ctx.host.name
        with m.lock:
            m.per_host[host] = m.per_host.get(host, 0) + 1
            m.client += 1
            m.max_host = max(m.max_host, m.per_host[host])
            m.max_client = max(m.max_client, m.client)
        threading.Event().wait(0.02)  # hold the lease while others try
        with m.lock:
            m.per_host[host] -= 1
            m.client -= 1
            m.applied += 1
        return "ok"


def test_50_concurrent_triggers_on_one_client(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    spec = FixSpec.model_validate({"fix": _Slow.name,
                                   "budget": {"attempts": 1000, "quarantine_after": 1000}})
    fix_pass = FixPass(history, [Binding(0, spec, _Slow, _Slow.Params.model_validate({}))],
                       actor="test", client_cap=3, global_cap=10, lease_wait=120,
                       clock=ticking_clock())
    hosts = [Host(f"h{i}", vars={"ansible_connection": "local", "client": "acme"})
             for i in range(10)]

    def trigger(n: int) -> None:
        host = hosts[n % len(hosts)]
        failing = Result(Status.CRIT, "broken", host=host.name, check="test.check",
                         name="test.check")
        ok = Result(Status.OK, "fine", host=host.name, check="test.check",
                    name="test.check")
        fix_pass(FinishedHost(host, [(0, None, [failing])],  # type: ignore[list-item]
                              lambda: None, lambda i: [ok], False, f"run-{n}", Redactor(),
                              threading.Event()))

    threads = [threading.Thread(target=trigger, args=(n,)) for n in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert METER.max_host == 1
    assert METER.max_client <= 3
    outcomes = [o.outcome for o in fix_pass.outcomes]
    assert len(outcomes) == 50
    # Each host is fixed once: its other triggers saw the failure before that fix ran
    # (settling: superseded), or after it (refused: it did not hold, so back off).
    assert METER.applied == outcomes.count("fixed") == 10, outcomes
    assert set(outcomes) <= {"fixed", "settling", "refused"}, outcomes


def test_triggers_waiting_for_the_host_lease_do_not_overrun_the_budget(
        tmp_path: Path) -> None:
    """Five triggers of one host all pass the budget before any of them runs (the
    barrier in plan() holds them there), then queue for the host's lease: only the
    first applies; the others see it ran after their failure was seen."""
    triggers = 5
    barrier = threading.Barrier(triggers, timeout=60)
    applied: list[str] = []

    class _Held(Fix[Any]):
        name = "test.held"
        handles = (signature("test.check"),)
        platforms = ("*",)
        default_tier = "auto"
        needs_window = False
        settle = 0.0

        def plan(self, ctx: FixContext[Any]) -> Plan | None:
            barrier.wait()
            return Plan(f"fix {ctx.host.name}")

        def apply(self, ctx: FixContext[Any], plan: Plan) -> str:
            applied.append(ctx.host.name)
            return "ok"

    history = History(tmp_path / "h.sqlite3")
    spec = FixSpec.model_validate({"fix": _Held.name, "budget": {"attempts": 3}})
    fix_pass = FixPass(history, [Binding(0, spec, _Held, _Held.Params.model_validate({}))],
                       actor="test", lease_wait=120, clock=ticking_clock())
    host = Host("h0", vars={"ansible_connection": "local", "client": "acme"})
    failing = Result(Status.CRIT, "broken", host="h0", check="test.check", name="test.check")
    ok = Result(Status.OK, "fine", host="h0", check="test.check", name="test.check")

    def trigger(n: int) -> None:
        fix_pass(FinishedHost(host, [(0, None, [failing])],  # type: ignore[list-item]
                              lambda: None, lambda i: [ok], False, f"run-{n}", Redactor(),
                              threading.Event()))

    threads = [threading.Thread(target=trigger, args=(n,)) for n in range(triggers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    outcomes = sorted(o.outcome for o in fix_pass.outcomes)
    assert applied == ["h0"], f"applied {len(applied)} times; budget 3/h: {outcomes}"
    assert outcomes == ["fixed"] + ["settling"] * (triggers - 1)
    assert fix_pass.budgets.state("h0", _Held.name).failures == 0
