"""Tenant safety, the settle period, secrets in the audit trail, and scheduled runs."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tests.remediation.conftest import local
from upkeeper import Fix, FixContext, Plan, Result, Status, signature
from upkeeper.checks import NoParams
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.secrets import Redactor
from upkeeper.models import Host
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.spec import Binding, FixSpec
from upkeeper.store.history import History

TEMPLATED = """
name: services
hosts: all
checks:
  - check: system.service
    params: {service: "{{ svc }}"}
    fix: {fix: system.service.restart, safe_anytime: true, settle: 10m}
"""


def test_a_fix_runs_only_on_the_host_whose_check_failed(cycle_for, systemd):
    systemd.set("nginx", "failed")
    systemd.set("redis", "active")
    hosts = [local("web1", svc="nginx", client="acme"),
             local("db1", svc="redis", client="globex")]
    cycle = cycle_for(TEMPLATED, hosts)
    run = cycle.run()
    assert [(o["host"], o["client"], o["outcome"]) for o in run.meta["remediation"]] == [
        ("web1", "acme", "fixed")]
    records = AuditLog(cycle.history).records()
    assert {r.host for r in records} == {"web1"} and {r.client for r in records} == {"acme"}
    assert AuditLog(cycle.history).records(client="globex") == []
    assert systemd.restarts() == 1 and systemd.state("redis") == "active"


def test_the_settle_period_is_not_a_new_trigger(cycle_for, systemd, clock):
    systemd.set("nginx", "failed")
    cycle = cycle_for(TEMPLATED, [local(svc="nginx")])
    assert cycle.run().meta["remediation"][0]["outcome"] == "fixed"
    clock.advance(minutes=5)
    systemd.set("nginx", "failed")  # still coming up, or down again: within 10 min
    settling = cycle.run().meta["remediation"][0]
    assert settling["outcome"] == "settling" and systemd.restarts() == 1
    clock.advance(minutes=6)
    assert cycle.run().meta["remediation"][0]["outcome"] == "fixed"
    assert systemd.restarts() == 2


def test_secrets_in_command_output_are_masked_in_the_audit(cycle_for, systemd):
    systemd.set("nginx", "failed")
    systemd.mark("nginx", "says", "restarting with token tok-9f8e7d6c5b\n")
    cycle = cycle_for(TEMPLATED, [local(svc="nginx", api_token="tok-9f8e7d6c5b")])
    run = cycle.run()
    assert run.meta["remediation"][0]["outcome"] == "fixed"
    [apply] = AuditLog(cycle.history).records(kinds=["apply"])
    assert "restarting with token" in apply.data["commands"][0]["stdout"]
    raw = cycle.history.query("SELECT group_concat(data) FROM remediation_audit")[0][0]
    assert "tok-9f8e7d6c5b" not in raw and "tok-9f8e7d6c5b" not in str(run.meta)


def test_scheduled_runs_fix_too(tmp_path, systemd):
    from upkeeper.cli.serve import PlaybookDir
    from upkeeper.plugins import get_plugin_manager
    from upkeeper.schedule.slots import Slot
    from upkeeper.store.history import History

    books = tmp_path / "books"
    books.mkdir()
    (books / "svc.yml").write_text(
        "name: svc\nhosts: localhost\nschedule: {every: day, at: '02:00'}\nchecks:\n"
        "  - check: system.service\n    params: {service: nginx}\n"
        "    fix: {fix: system.service.restart, safe_anytime: true}\n")
    systemd.set("nginx", "failed")
    plugins = get_plugin_manager()
    history = History(tmp_path / "h.sqlite3")
    source = PlaybookDir(books, (), lambda: plugins, history)
    loaded = source()
    assert loaded.errors == {}
    now = datetime.now(timezone.utc)
    record = source.run(loaded.jobs["svc.yml"], Slot("svc.yml", 0, now, now, run_id="r1"),
                        threading.Event())
    assert record.meta["remediation"][0]["outcome"] == "fixed"
    assert AuditLog(history).records(kinds=["plan"])[0].actor.startswith("schedule:")
    (books / "bad.yml").write_text(
        "name: bad\nschedule: {every: day, at: '02:00'}\nchecks:\n"
        "  - check: system.service\n    params: {service: nginx}\n    fix: no.such.fix\n")
    errors = source().errors
    assert "bad.yml" in errors and "unknown fix 'no.such.fix'" in errors["bad.yml"]



class _Connects(Fix[Any]):
    """A third-party style fix whose plan names a connection string with a password."""

    name = "test.reconnect"
    handles = (signature("test.check"),)
    platforms = ("*",)
    default_tier = "approve"
    needs_window = False

    def plan(self, ctx: FixContext[Any]) -> Plan | None:
        dsn = f"postgres://app:{ctx.host.vars['db_password']}@db1/app"
        return Plan(f"reconnect to {dsn}", [{"dsn": dsn}], [["reconnect", dsn]])

    def apply(self, ctx: FixContext[Any], plan: Plan) -> str:
        return "reconnected"


def test_secrets_in_a_plan_waiting_for_approval_are_masked(tmp_path: Path) -> None:
    """The approval request (its audit record, and the queue the dashboard shows) holds
    the plan as the run's other records do: with the run's secrets masked."""
    secret = "pw-9f8e7d6c5b"
    history = History(tmp_path / "h.sqlite3")
    spec = FixSpec.model_validate({"fix": _Connects.name})
    fix_pass = FixPass(history, [Binding(0, spec, _Connects, NoParams())], actor="test")
    host = Host("web1", vars={"ansible_connection": "local", "client": "acme",
                              "db_password": secret})
    failing = Result(Status.CRIT, "broken", host="web1", check="test.check",
                     name="test.check")
    fix_pass(FinishedHost(host, [(0, None, [failing])],  # type: ignore[list-item]
                          lambda: None, lambda i: [], False, "run-1", Redactor([secret]),
                          threading.Event()))
    assert [o.outcome for o in fix_pass.outcomes] == ["awaiting-approval"]
    kinds = {r.kind for r in AuditLog(history).records()}
    assert {"plan", "approval-requested"} <= kinds
    raw = history.query("SELECT group_concat(data) FROM remediation_audit")[0][0]
    assert secret not in raw
    queued = history.query("SELECT group_concat(plan) FROM remediation_approvals")[0][0]
    assert secret not in queued and "postgres://app:" in queued
