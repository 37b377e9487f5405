"""50 concurrent triggers on one client: one fix per host at a time, never over the
client cap (leases in SQLite, so the same holds across processes)."""

from __future__ import annotations

import threading
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
                       actor="test", client_cap=3, global_cap=10, lease_wait=120)
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
    assert METER.applied == outcomes.count("fixed") >= 10
    assert set(outcomes) <= {"fixed", "deferred", "refused"}  # refused: backoff
