"""Signatures: what a fix handles, and what never triggers one."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Fix, FixContext, Plan, Result, Status, signature
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.secrets import Redactor
from upkeeper.models import Host
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.spec import Binding, FixSpec
from upkeeper.store.history import History


def test_signature_matches_status_check_summary_and_details():
    sig = signature("disk.usage", "CRIT", summary="full", mount="^/var$")
    hit = Result(Status.CRIT, "/var is full", check="disk.usage", details={"mount": "/var"})
    assert sig.matches(hit)
    for miss in (Result(Status.WARN, "/var is full", check="disk.usage",
                        details={"mount": "/var"}),
                 Result(Status.CRIT, "/var is full", check="disk.usage",
                        details={"mount": "/var/lib"}),
                 Result(Status.CRIT, "/var is full", check="disk.other",
                        details={"mount": "/var"}),
                 Result(Status.CRIT, "/var is fine", check="disk.usage",
                        details={"mount": "/var"}),
                 Result(Status.CRIT, "/var is full", check="disk.usage", details=None)):
        assert not sig.matches(miss)


def test_nested_details_and_refused_statuses():
    sig = signature("backup.restic", lock__host="^web1$")
    assert sig.matches(Result(Status.WARN, "", check="backup.restic",
                              details={"lock": {"host": "web1"}}))
    with pytest.raises(ValueError, match="WARN and CRIT only"):
        signature("x", "UNKNOWN")
    with pytest.raises(ValueError):
        signature("x", "OK")


class _Counting(Fix[Any]):
    name = "test.counting"
    handles = (signature("system.service"),)
    platforms = ("*",)
    default_tier = "auto"
    needs_window = False
    calls: Counter[str] = Counter()

    def plan(self, ctx: FixContext[Any]) -> Plan | None:
        self.calls["plan"] += 1
        return Plan("do it")

    def apply(self, ctx: FixContext[Any], plan: Plan) -> str:
        self.calls["apply"] += 1
        return "done"


def fix_pass_with_counter(tmp_path: Path, clock: Any) -> tuple[FixPass, Counter[str], Any]:
    _Counting.calls = Counter()
    history = History(tmp_path / "sig.sqlite3")
    spec = FixSpec.model_validate({"fix": _Counting.name})
    fix_pass = FixPass(history, [Binding(0, spec, _Counting,
                                         _Counting.Params.model_validate({}))],
                       actor="test", clock=clock)
    host = Host("web1", vars={"ansible_connection": "local"})

    def finished(results: list[Result]) -> FinishedHost:
        def transport() -> Any:
            raise AssertionError("no transport may be opened for a fix that never runs")

        return FinishedHost(host, [(0, None, results)], transport,  # type: ignore[list-item]
                            lambda i: [], False, "run-1", Redactor(), threading.Event())

    return fix_pass, _Counting.calls, finished
