"""Budgets on their own: backoff doubling, quarantine once, release, stale leases."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from upkeeper.remediation.budget import Budgets
from upkeeper.store.history import History

RULES = {"attempts": 10, "per": timedelta(hours=1), "backoff": timedelta(minutes=5),
         "quarantine_after": 3}


def _budgets(tmp_path: Path) -> tuple[Budgets, list[datetime]]:
    now = [datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)]
    return Budgets(History(tmp_path / "h.sqlite3"), clock=lambda: now[0]), now


def _fail(b: Budgets) -> bool:
    b.begin("h", "f", RULES["per"])
    return b.finish("h", "f", succeeded=False, settle=0, quarantine_after=3)


def test_backoff_doubles_then_quarantine_once_then_release(tmp_path: Path) -> None:
    b, now = _budgets(tmp_path)
    assert b.consider("h", "f", **RULES).allowed
    assert _fail(b) is False
    now[0] += timedelta(minutes=4)
    assert "backing off" in b.consider("h", "f", **RULES).reason
    now[0] += timedelta(minutes=1)
    assert b.consider("h", "f", **RULES).allowed
    assert _fail(b) is False
    now[0] += timedelta(minutes=9)  # 2 failures: 10 minutes
    assert not b.consider("h", "f", **RULES).allowed
    now[0] += timedelta(minutes=1)
    assert b.consider("h", "f", **RULES).allowed
    assert _fail(b) is True  # the third failure quarantines, and says so once
    now[0] += timedelta(hours=5)
    verdicts = [b.consider("h", "f", **RULES) for _ in range(3)]
    assert all(not v.allowed and "quarantined" in v.reason and not v.exhausted
               for v in verdicts)
    assert [s.fix for s in b.all(quarantined_only=True)] == ["f"]
    assert b.release("h", "f") and not b.release("h", "f")
    assert b.consider("h", "f", **RULES).allowed


def test_attempts_per_period(tmp_path: Path) -> None:
    b, now = _budgets(tmp_path)
    rules = {**RULES, "attempts": 2}
    for _ in range(2):
        assert b.consider("h", "f", **rules).allowed
        b.begin("h", "f", rules["per"])
        now[0] += timedelta(minutes=10)
    assert "budget spent" in b.consider("h", "f", **rules).reason
    now[0] += timedelta(minutes=41)
    assert b.consider("h", "f", **rules).allowed


def test_a_lease_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    b, _ = _budgets(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    assert b.acquire("h", "acme", "f", "me", client_cap=1, global_cap=1, ttl=600) is None
    assert "another fix" in (b.acquire("h", "acme", "f", "other", client_cap=5,
                                       global_cap=5, ttl=600) or "")
    assert "for client acme" in (b.acquire("h2", "acme", "f", "x", client_cap=1,
                                           global_cap=5, ttl=600) or "")
    with b._db.transaction() as conn:  # the holder was kill -9'd mid-apply
        conn.execute("UPDATE remediation_leases SET pid=? WHERE host='h'", (pid,))
    assert b.acquire("h", "acme", "f", "next", client_cap=1, global_cap=1, ttl=600) is None


def test_a_fix_finishing_while_a_trigger_waits_is_no_settle_period_of_zero(
        tmp_path: Path) -> None:
    """The flake behind test_50_concurrent_triggers: ``consider`` read the clock, then
    waited for the database while another trigger's fix finished (settle 0, so
    settle_until = its finish time, later than the stale reading): "settling"."""
    import threading

    history = History(tmp_path / "h.sqlite3")
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
    now = [t0]
    other = Budgets(history, clock=lambda: now[0])
    other.begin("h", "f", RULES["per"])
    first = [True]

    def clock() -> datetime:
        reading = now[0]
        if first[0]:  # the other trigger's fix finishes right after this reading
            first[0] = False

            def finish() -> None:
                now[0] = t0 + timedelta(seconds=1)
                other.finish("h", "f", succeeded=True, settle=0, quarantine_after=3)

            th = threading.Thread(target=finish)
            th.start()
            th.join(1.0)  # blocks on the write lock when the clock is read under it
        return reading

    verdict = Budgets(history, clock=clock).consider("h", "f", **RULES)
    assert not verdict.settling, verdict.reason
