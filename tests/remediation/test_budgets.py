"""Budgets: a flapping service over 100 simulated cycles, kill -9 between attempts, the
approval tier, and 1,000 randomized runs whose failures say nothing (no fix ever)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.remediation.standins import StandInSystemd
from upkeeper.models import Result, Status
from upkeeper.remediation.approvals import Approvals
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.budget import Budgets

FLAPPING = """
name: flapping
hosts: all
checks:
  - check: system.service
    params: {service: nginx}
    fix:
      fix: system.service.restart
      safe_anytime: true
      settle: 1m
      budget: {attempts: 3, per: 1h, backoff: 5m, quarantine_after: 5}
"""


def _restarts_per_hour(cycle) -> Counter[int]:
    records = AuditLog(cycle.history).records(kinds=["apply"])
    start = records[0].ts if records else None
    return Counter(int((r.ts - start).total_seconds() // 3600) for r in records)


@pytest.mark.slow
def test_flapping_service_100_cycles(cycle_for, systemd: StandInSystemd, clock):
    cycle = cycle_for(FLAPPING)
    exhausted = 0
    for _ in range(100):
        systemd.set("nginx", "failed")  # it dies every cycle
        run = cycle.run()
        exhausted += sum(o["outcome"] == "exhausted" for o in run.meta["remediation"])
        clock.advance(minutes=5)
    per_hour = _restarts_per_hour(cycle)
    assert max(per_hour.values()) <= 3
    assert exhausted == 1
    assert len(AuditLog(cycle.history).records(kinds=["exhausted"])) == 1
    assert systemd.restarts() == sum(per_hour.values()) >= 3
    assert AuditLog(cycle.history).verify() == []


def test_budget_survives_a_restart(cycle_for, systemd: StandInSystemd, clock):
    body = FLAPPING.replace("backoff: 5m, quarantine_after: 5", "backoff: 1m, "
                            "quarantine_after: 10")
    cycle = cycle_for(body)
    for _ in range(3):
        systemd.set("nginx", "failed")
        cycle.run()
        clock.advance(minutes=6)
    assert systemd.restarts() == 3
    # A new process: new plugin system, new history connection on the same file.
    again = cycle_for(body)
    systemd.set("nginx", "failed")
    run = again.run()
    assert systemd.restarts() == 3
    assert run.meta["remediation"][0]["outcome"] == "refused"
    assert "budget spent" in run.meta["remediation"][0]["summary"]


FLAPPER = Path(__file__).with_name("flapper.py")


def _spawn(db: Path, pb: Path, path_env: str, start: int, end: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PATH": path_env}
    return subprocess.Popen([sys.executable, str(FLAPPER), str(db), str(pb), str(start),
                             str(end)], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=Path(__file__).parents[2])


@pytest.mark.slow
def test_budget_survives_kill_9_between_attempts(tmp_path, systemd: StandInSystemd):
    pb = tmp_path / "pb.yml"
    pb.write_text(FLAPPING)
    db = tmp_path / "h.sqlite3"
    path_env = os.environ["PATH"]
    proc = _spawn(db, pb, path_env, 0, 100)
    assert proc.stdout is not None
    done = -1
    deadline = time.monotonic() + 60
    while systemd.restarts() < 2 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("cycle"):
            done = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert systemd.restarts() >= 2
    rest = _spawn(db, pb, path_env, done + 1, 100)
    out, _ = rest.communicate(timeout=120)
    assert rest.returncode == 0, out
    from upkeeper.store.history import History

    history = History(db)
    applies = AuditLog(history).records(kinds=["apply"])
    start = applies[0].ts
    per_hour = Counter(int((r.ts - start).total_seconds() // 3600) for r in applies)
    assert max(per_hour.values()) <= 3
    assert len(AuditLog(history).records(kinds=["exhausted"])) == 1
    assert AuditLog(history).verify() == []


APPROVE = FLAPPING.replace("      safe_anytime: true\n", "      safe_anytime: true\n"
                           "      tier: approve\n")


def test_approval_tier_waits_then_applies_the_approved_plan(cycle_for, systemd, clock):
    systemd.set("nginx", "failed")
    cycle = cycle_for(APPROVE)
    run = cycle.run()
    assert run.meta["remediation"][0]["outcome"] == "awaiting-approval"
    assert systemd.restarts() == 0
    queue = Approvals(cycle.history, clock=clock)
    pending = queue.pending()
    assert len(pending) == 1 and pending[0].plan["commands"]
    queue.approve(pending[0].id, "cli:root")
    run = cycle.run()
    assert run.meta["remediation"][0]["outcome"] == "fixed"
    assert systemd.restarts() == 1
    kinds = [r.kind for r in AuditLog(cycle.history).records()]
    assert kinds == ["plan", "approval-requested", "approve", "plan", "apply-begin",
                     "apply", "verify"]


def test_expired_approval_is_denied_and_asked_again(cycle_for, systemd, clock):
    systemd.set("nginx", "failed")
    cycle = cycle_for(APPROVE)
    first = cycle.run().meta["remediation"][0]["approval"]
    clock.advance(hours=25)
    second = cycle.run().meta["remediation"][0]
    assert second["outcome"] == "awaiting-approval" and second["approval"] != first
    assert systemd.restarts() == 0
    assert Approvals(cycle.history).get(first).state == "expired"


def test_never_tier_plans_only(cycle_for, systemd):
    systemd.set("nginx", "failed")
    cycle = cycle_for(FLAPPING.replace("safe_anytime: true", "safe_anytime: true\n"
                                       "      tier: never"))
    assert cycle.run().meta["remediation"][0]["outcome"] == "planned"
    assert systemd.restarts() == 0


def test_1000_randomized_runs_of_unknown_trigger_no_fix(tmp_path, clock):
    """UNKNOWN (timeouts, transport errors, unreachable hosts, crashed checks) never
    matches any fix's signature, whatever its summary and details say."""
    from tests.remediation.test_signatures import fix_pass_with_counter

    fix_pass, calls, finished_host = fix_pass_with_counter(tmp_path, clock)
    rng = random.Random(18)
    summaries = ["timed out after 60s", "unreachable: connection refused",
                 "transport error: broken pipe", "nginx is failed (dead)",
                 "check failed: OSError", "run interrupted while this check ran"]
    for _ in range(1000):
        result = Result(rng.choice([Status.UNKNOWN, Status.UNKNOWN, Status.SKIPPED]),
                        rng.choice(summaries), host="web1", check="system.service",
                        name="system.service",
                        details={"service": "nginx", "active_state": rng.choice(
                            ["failed", "inactive"]), "manager": "systemd"})
        fix_pass(finished_host([result]))
    assert calls == Counter()
    assert fix_pass.outcomes == []
    assert Budgets(fix_pass.db).all() == []


def test_an_approval_outlives_a_run_outside_the_window(cycle_for, systemd, clock):
    from tests.remediation.conftest import local

    systemd.set("nginx", "failed")
    body = APPROVE.replace("      safe_anytime: true\n", "")
    cycle = cycle_for(body, [local(maintenance_windows=["Mon 12:00-13:00"])])
    assert cycle.run().meta["remediation"][0]["outcome"] == "awaiting-approval"
    queue = Approvals(cycle.history, clock=clock)
    queue.approve(queue.pending()[0].id, "cli:root")
    refused = cycle.run().meta["remediation"][0]  # 10:00: outside the window
    assert refused["outcome"] == "refused" and "outside maintenance window" in refused[
        "summary"]
    assert len(queue.approved()) == 1 and systemd.restarts() == 0
    clock.advance(hours=2, minutes=30)
    assert cycle.run().meta["remediation"][0]["outcome"] == "fixed"
    assert systemd.restarts() == 1 and queue.approved() == []


def test_the_plan_digest_covers_what_apply_does_only():
    from upkeeper import Plan

    a = Plan("remove 1 lock", [{"id": "ab", "age_s": 1900}], [["rm", "--", "x"]],
             data={"ids": ["ab"]})
    b = Plan("remove 1 stale lock", [{"id": "ab", "age_s": 2500}], [["rm", "--", "x"]],
             data={"ids": ["ab"]})
    c = Plan("remove 1 lock", [{"id": "ab", "age_s": 1900}], [["rm", "--", "y"]],
             data={"ids": ["ab"]})
    assert a.digest() == b.digest() != c.digest()
