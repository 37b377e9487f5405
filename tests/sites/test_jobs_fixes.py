"""Remediation for site hosts (issue 18 item 6 with issue 16): the fix pass runs at the
site's worker on the job's host, once per slot even when the job is redelivered, within
the hub's budgets, and its audit records land in the hub's hash chain."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.remediation.standins import StandInSystemd
from tests.sites.jobhelpers import WorkerThread, wait_for
from tests.sites.natsserver import NatsServer
from tests.sites.test_jobs_once import consumer_idle
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.plugins import get_plugin_manager
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.budget import Budgets
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History

ACK_WAIT = 1.0
HOSTS = 5


def playbook(tmp: Path, tier: str = "auto") -> Path:
    path = tmp / "pb.yml"
    path.write_text(yaml.safe_dump({"name": "keep units up", "hosts": "all", "checks": [{
        "check": "system.service", "params": {"service": "{{ unit }}"},
        "fix": {"fix": "system.service.restart", "safe_anytime": True, "settle": "1m",
                "tier": tier}}]}))
    return path


def inventory(tmp: Path, n: int) -> Path:
    path = tmp / "inv.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {
        f"h{i}": {"ansible_connection": "local", "site": "acme", "client": "acme",
                  "unit": f"svc-h{i}"} for i in range(n)}}}))
    return path


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInSystemd:
    fake = StandInSystemd(tmp_path / "systemd")
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    return fake


def run_through_site(nats: NatsServer, tmp: Path, history: History, workers: list[Any],
                     *, tier: str = "auto", n: int = HOSTS,
                     then: Any = None) -> Any:
    plugins = get_plugin_manager()
    pb = load_playbook(playbook(tmp, tier), plugins.registry)
    hub = Hub(nats.url, history,
              settings=SiteSettings(ack_wait=ACK_WAIT, heartbeat=0.5)).start()
    threads = [WorkerThread("acme", nats.url, tmp / name, plugins=plugins, name=name,
                            options=opts) for name, opts in workers]
    try:
        threads[0].start()
        run = run_playbook(pb, load_inventory([str(inventory(tmp, n))]), plugins, history,
                           remote=hub.remote(time.time() + 60))
        for t in threads[1:]:
            t.start()
        if then is not None:
            then(threads)
        wait_for(lambda: consumer_idle(nats.url, "acme"), 30, "all jobs acked")
    finally:
        for t in threads:
            t.stop()
        hub.close()
    return run


def test_site_host_is_fixed_once_at_its_worker_even_when_redelivered(
        nats_server: NatsServer, tmp_path: Path, systemd: StandInSystemd) -> None:
    for i in range(HOSTS):
        systemd.set(f"svc-h{i}", "failed")
    history = History(tmp_path / "hub.db")
    stall = WorkerOptions(concurrency=HOSTS, stall_before_ack=ACK_WAIT * 3, fetch_timeout=1)
    other = WorkerOptions(concurrency=2, fetch_timeout=1)
    run = run_through_site(
        nats_server, tmp_path, history, [("stalls", stall), ("other", other)],
        then=lambda ts: wait_for(lambda: ts[1].worker.stats["resent"] >= HOSTS, 30,
                                 "the redelivered jobs to reach the other worker"))
    restarts = (systemd.state_dir / "restarts.log").read_text().split()
    assert sorted(restarts) == [f"svc-h{i}" for i in range(HOSTS)], "a fix ran twice"
    assert all(systemd.state(f"svc-h{i}") == "active" for i in range(HOSTS))
    outcomes = sorted((o["host"], o["outcome"]) for o in run.meta["remediation"])
    assert outcomes == [(f"h{i}", "fixed") for i in range(HOSTS)]
    audit = AuditLog(history)
    assert audit.verify() == []
    for i in range(HOSTS):
        records = audit.records(host=f"h{i}")
        assert [r.kind for r in records] == ["plan", "apply-begin", "apply", "verify"]
        assert {r.data["site"] for r in records} == {"acme"}
        assert records[0].actor == "site:acme:stalls"
        assert len(Budgets(history).state(f"h{i}", "system.service.restart").attempts) == 1
    history.close()


def test_hub_budget_governs_the_worker(nats_server: NatsServer, tmp_path: Path,
                                       systemd: StandInSystemd) -> None:
    systemd.set("svc-h0", "failed")
    history = History(tmp_path / "hub.db")
    budgets = Budgets(history)  # the fix was quarantined at the hub earlier
    budgets.begin("h0", "system.service.restart", __import__("datetime").timedelta(hours=1))
    assert budgets.finish("h0", "system.service.restart", succeeded=False, settle=0,
                          quarantine_after=1)
    run = run_through_site(nats_server, tmp_path, history,
                           [("w", WorkerOptions(concurrency=1, fetch_timeout=1))], n=1)
    assert systemd.restarts() == 0
    assert [o["outcome"] for o in run.meta["remediation"]] == ["refused"]
    assert "quarantined" in run.meta["remediation"][0]["summary"]
    assert [r.kind for r in AuditLog(history).records(host="h0")] == ["refuse"]
    history.close()


def test_approval_fixes_are_planned_only_at_a_site(nats_server: NatsServer, tmp_path: Path,
                                                   systemd: StandInSystemd) -> None:
    systemd.set("svc-h0", "failed")
    history = History(tmp_path / "hub.db")
    run = run_through_site(nats_server, tmp_path, history,
                           [("w", WorkerOptions(concurrency=1, fetch_timeout=1))],
                           tier="approve", n=1)
    assert systemd.restarts() == 0
    outcome = run.meta["remediation"][0]
    assert outcome["outcome"] == "planned" and "site acme" in outcome["summary"]
    assert [r.kind for r in AuditLog(history).records(host="h0")] == ["plan"]
    history.close()


def test_hub_keeps_its_quarantine_and_drops_records_of_other_hosts(tmp_path: Path) -> None:
    from datetime import timedelta

    from upkeeper.sites.fixes import ingest_remediation

    history = History(tmp_path / "hub.db")
    budgets = Budgets(history)
    budgets.begin("h0", "system.service.restart", timedelta(hours=1))
    budgets.finish("h0", "system.service.restart", succeeded=False, settle=0,
                   quarantine_after=1)
    audit = AuditLog(history)
    added = ingest_remediation(history, audit, site="acme", worker="w", host="h0",
                               remediation={
        "audit": [{"kind": "apply", "actor": "site:acme:w", "subject": "x", "host": "h9",
                   "data": {}},
                  {"kind": "NOT A KIND", "actor": "a", "subject": "s", "host": "h0"},
                  {"kind": "plan", "actor": "site:acme:w", "subject": "h0/s/f",
                   "host": "h0", "data": {"plan": {}}}],
        "budgets": [{"fix": "system.service.restart", "attempts": "[]", "failures": 0,
                     "quarantined": None, "reason": ""},
                    {"fix": "other", "attempts": "not json"}]})
    assert added == 1
    assert [(r.host, r.kind) for r in audit.records()] == [("h0", "plan")]
    assert audit.verify() == []
    state = budgets.state("h0", "system.service.restart")
    assert state.quarantined is not None, "a worker lifted the hub's quarantine"
    assert state.failures == 0  # the rest of the row is the worker's word
    assert budgets.state("h0", "other").attempts == ()
    history.close()
