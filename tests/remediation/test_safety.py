"""Tenant safety, the settle period, secrets in the audit trail, and scheduled runs."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from tests.remediation.conftest import local
from upkeeper.remediation.audit import AuditLog

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
