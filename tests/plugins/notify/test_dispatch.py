"""Runs through the real runner, plugin system and core's after-run step with the notify
plugin's notifiers: alerts per channel, dedup across runs, reminders with a fake clock,
digests, failures recorded, and reports written."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from upkeeper.after_run.context import RunContext
from upkeeper.after_run.pipeline import after_run
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.models import RunRecord
from upkeeper.plugins import PluginSystem, get_plugin_manager
from upkeeper.store.history import History
from upkeeper_notify.testserver import (
    SMTP_PASSWORD,
    SMTP_USER,
    SMTPServer,
    WebhookServer,
    free_port,
)

from .helpers import ScriptedPlugin, write_inventory, write_playbook

PW_ENV = "UPK_TEST_SMTP_PASSWORD"
TOKEN_ENV = "UPK_TEST_PSA_TOKEN"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)
        self.sleeps: list[float] = []


def plugin_system() -> PluginSystem:
    return get_plugin_manager(extra_plugins=[("scripted", ScriptedPlugin())])


def email_channel(smtp: SMTPServer, **over: Any) -> dict[str, Any]:
    return {"email": {"host": smtp.host, "port": smtp.port, "username": SMTP_USER,
                      "password": "{{ env.UPK_TEST_SMTP_PASSWORD }}",
                      "from": "upkeeper@msp.example", "to": ["noc@msp.example"],
                      "ca_file": smtp.ca_file, "timeout": 10, **over}}


def webhook_channel(url: str, **over: Any) -> dict[str, Any]:
    return {"webhook": {"url": url, "timeout": 5, "backoff": 0, **over}}


class Fleet:
    """A playbook + inventory in a temp dir, run again and again with scripted statuses."""

    def __init__(self, tmp: Path, notify: Any = None, report: Any = None,
                 clock: Clock | None = None) -> None:
        self.tmp = tmp
        self.clock = clock
        self.pb_path = write_playbook(tmp / "nightly.yml", notify=notify, report=report)
        self.plugins = plugin_system()
        self.history = History(tmp / "state" / "history.sqlite3")

    def context(self, run: RunRecord) -> RunContext:
        pb = load_playbook(self.pb_path, self.plugins.registry)
        ctx = RunContext.for_run(run, pb, self.history, self.plugins)
        if self.clock is not None:
            ctx.now, ctx.sleep = self.clock.now, self.clock.sleeps.append
        return ctx

    def run(self, hosts: Mapping[str, Mapping[str, Any]]) -> RunRecord:
        inv = load_inventory([write_inventory(self.tmp / "inventory.yml", hosts)])
        pb = load_playbook(self.pb_path, self.plugins.registry)
        run = run_playbook(pb, inv, self.plugins, self.history)
        after_run(run, self.context(run))
        return run


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PW_ENV, SMTP_PASSWORD)
    monkeypatch.setenv(TOKEN_ENV, "psa-token-0042")


def acme(status: str, **more: Any) -> dict[str, dict[str, Any]]:
    return {"web1": {"client": "Acme", "scripted_status": status, **more}}


def test_ok_crit_crit_ok_sends_two_messages_per_channel(
        tmp_path: Path, smtp: SMTPServer, webhook: WebhookServer) -> None:
    notify = {"min_status": "WARN", "renotify": "24h",
              "channels": [email_channel(smtp), webhook_channel(webhook.url, format="slack")]}
    fleet = Fleet(tmp_path, notify=notify)
    for status in ("OK", "CRIT", "CRIT", "OK"):
        run = fleet.run(acme(status, scripted_summary=f"disk is {status}"))
        assert all(d["ok"] for d in run.meta.get("notifications", []))
    subjects = [m["Subject"] for m in smtp.mailbox.messages]
    assert subjects == ["[upkeeper] CRIT: Acme/web1 scripted: disk is CRIT",
                        "[upkeeper] RECOVERED: Acme/web1 scripted: disk is OK"]
    assert [h.json()["text"] for h in webhook.hits] == [s.removeprefix("[upkeeper] ")
                                                       for s in subjects]
    assert smtp.mailbox.logins == [SMTP_USER, SMTP_USER]
    html = next(p for p in smtp.mailbox.messages[1].iter_parts()
                if p.get_content_type() == "text/html").get_content()
    assert "RECOVERED" in html and "recovered from CRIT" in html
    stored = fleet.history.runs(limit=1)[0]
    assert stored["status"] == "OK"


def test_state_survives_a_restart(tmp_path: Path, webhook: WebhookServer) -> None:
    notify = [{"notifier": "webhook", "url": webhook.url, "backoff": 0}]
    Fleet(tmp_path, notify=notify).run(acme("CRIT"))
    Fleet(tmp_path, notify=notify).run(acme("CRIT"))  # a new process: fresh objects, same DB
    assert len(webhook.hits) == 1


def test_reminder_after_renotify_and_status_changes(tmp_path: Path,
                                                    webhook: WebhookServer) -> None:
    clock = Clock()
    fleet = Fleet(tmp_path, clock=clock,
                  notify={"renotify": "24h", "channels": [webhook_channel(webhook.url)]})
    steps = [(0, "WARN"), (1, "WARN"), (23, "WARN"), (25, "WARN"), (26, "CRIT"),
             (27, "CRIT"), (52, "CRIT"), (53, "OK"), (54, "OK")]
    start = clock.now
    for hours, status in steps:
        clock.now = start + timedelta(hours=hours)
        fleet.run(acme(status))
    kinds = [(h.json()["alerts"][0]["kind"], h.json()["status"]) for h in webhook.hits]
    assert kinds == [("new", "WARN"), ("reminder", "WARN"), ("changed", "CRIT"),
                     ("reminder", "CRIT"), ("recovery", "OK")]


def test_min_status_and_quiet_recovery(tmp_path: Path, webhook: WebhookServer) -> None:
    notify = {"min_status": "CRIT", "recovery": False,
              "channels": [webhook_channel(webhook.url)]}
    fleet = Fleet(tmp_path, notify=notify)
    for status in ("WARN", "CRIT", "WARN", "OK", "CRIT"):
        fleet.run(acme(status))
    assert [(h.json()["alerts"][0]["kind"]) for h in webhook.hits] == ["new", "new"]


def test_digest_is_one_message_per_client(tmp_path: Path, webhook: WebhookServer) -> None:
    fleet = Fleet(tmp_path, notify={"digest": True, "channels": [webhook_channel(webhook.url)]})
    hosts = {"web1": {"client": "Acme", "scripted_status": "CRIT"},
             "db1": {"client": "Acme", "scripted_status": "WARN"},
             "fs1": {"client": "Beta", "scripted_status": "CRIT"},
             "ok1": {"client": "Beta", "scripted_status": "OK"}}
    fleet.run(hosts)
    by_client = {h.json()["client"]: h.json() for h in webhook.hits}
    assert set(by_client) == {"Acme", "Beta"} and len(webhook.hits) == 2
    assert by_client["Acme"]["subject"] == "CRIT: Acme: 2 problems"
    assert sorted(a["host"] for a in by_client["Acme"]["alerts"]) == ["db1", "web1"]


def test_custom_psa_body_with_token_from_env(tmp_path: Path, webhook: WebhookServer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    body = '{"summary": {{ subject | tojson }}, "client": {{ client | tojson }}}'
    chan = webhook_channel(webhook.url + "/api/tickets", body_template=body,
                           headers={"Authorization": "Bearer {{ env.UPK_TEST_PSA_TOKEN }}"})
    run = Fleet(tmp_path, notify=[chan]).run(acme("CRIT"))
    (hit,) = webhook.hits
    assert hit.headers["Authorization"] == "Bearer psa-token-0042"
    assert hit.json() == {"summary": "CRIT: Acme/web1 scripted: scripted CRIT",
                          "client": "Acme"}
    assert "psa-token-0042" not in caplog.text
    assert "psa-token-0042" not in json.dumps(run.meta)
    assert "psa-token-0042" not in (tmp_path / "nightly.yml").read_text()


def test_failing_notifier_is_recorded_and_retried_next_run(
        tmp_path: Path, webhook: WebhookServer, caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"
    notify = [{"notifier": "webhook", "url": dead, "retries": 1, "backoff": 0.01},
              {"notifier": "webhook", "url": webhook.url, "backoff": 0}]
    fleet = Fleet(tmp_path, notify=notify)
    t0 = time.monotonic()
    run = fleet.run(acme("CRIT"))
    assert time.monotonic() - t0 < 10
    assert run.exit_code == 2  # the run's own outcome, not the notifier's
    failed, delivered = run.meta["notifications"]
    assert failed["ok"] is False and failed["attempts"] == 2
    assert "127.0.0.1" in failed["error"] and "/hook" not in failed["error"]
    assert delivered["ok"] is True and len(webhook.hits) == 1
    assert "failed after 2 attempts" in caplog.text
    stored = fleet.history.query("SELECT meta FROM runs WHERE id=?", (run.run_id,))
    assert json.loads(stored[0][0])["notifications"][0]["ok"] is False
    # The dead channel was never told, so it tries again; the live one stays quiet.
    run2 = fleet.run(acme("CRIT"))
    assert [d["channel"] for d in run2.meta["notifications"]] == [failed["channel"]]
    assert len(webhook.hits) == 1


def test_broken_channel_setup_is_recorded(tmp_path: Path, webhook: WebhookServer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    notify = [webhook_channel(webhook.url, headers={"X-Token": "{{ env.UPK_TEST_PSA_TOKEN }}"}),
              webhook_channel(webhook.url, name="second")]
    run = Fleet(tmp_path, notify=notify).run(acme("CRIT"))
    first, second = run.meta["notifications"]
    assert first["ok"] is False and "cannot set up webhook" in first["error"]
    assert second["ok"] is True and len(webhook.hits) == 1


def test_mute_in_window(tmp_path: Path, webhook: WebhookServer) -> None:
    clock = Clock()  # Friday 2026-11-20 02:00 UTC, inside the daily 01:00-05:00 window
    fleet = Fleet(tmp_path, clock=clock,
                  notify={"mute_in_window": True, "channels": [webhook_channel(webhook.url)]})
    window = {"maintenance_windows": ["daily 01:00-05:00"], "timezone": "UTC"}
    fleet.run(acme("CRIT", **window))
    assert webhook.hits == []
    clock.now += timedelta(hours=4)  # 06:00, outside: the problem still there alerts now
    fleet.run(acme("CRIT", **window))
    assert len(webhook.hits) == 1


def test_report_section_writes_one_file_per_client(tmp_path: Path) -> None:
    report = [{"template": "client", "format": "html", "path": "reports/{client}-{date}.html"},
              {"template": "summary", "format": "md", "path": "reports/summary.md"}]
    fleet = Fleet(tmp_path, report=report)
    hosts = {"web1": {"client": "Acme", "scripted_status": "CRIT"},
             "fs1": {"client": "Beta & Co", "scripted_status": "OK"}}
    run = fleet.run(hosts)
    day = run.started.strftime("%Y-%m-%d")
    expected = {str(tmp_path / f"reports/Acme-{day}.html"),
                str(tmp_path / f"reports/Beta_Co-{day}.html"),
                str(tmp_path / "reports/summary.md")}
    assert set(run.meta["reports"]) == expected
    acme_html = (tmp_path / f"reports/Acme-{day}.html").read_text()
    assert "web1" in acme_html and "fs1" not in acme_html
    assert "Beta &amp; Co" in (tmp_path / f"reports/Beta_Co-{day}.html").read_text()


def test_bad_report_section_is_recorded_not_fatal(tmp_path: Path) -> None:
    report = {"template": "nope", "format": "html", "path": "r.html"}
    run = Fleet(tmp_path, report=report).run(acme("OK"))
    assert run.exit_code == 0
    assert "template 'nope.html.j2' not found" in run.meta["notify_errors"][0]


def test_interrupted_run_does_not_alert_on_unknown(tmp_path: Path,
                                                   webhook: WebhookServer) -> None:
    from upkeeper.models import Host, Result, Status

    fleet = Fleet(tmp_path, notify=[webhook_channel(webhook.url)])
    run = RunRecord("r-int", "nightly", interrupted=True)
    run.hosts = {h: Host(h, {"client": "Acme"}) for h in ("web1", "web2")}
    run.results = [Result(Status.UNKNOWN, "run interrupted", host="web1", check="test.scripted"),
                   Result(Status.CRIT, "really broken", host="web2", check="test.scripted")]
    fleet.history.start_run(run)
    after_run(run, fleet.context(run))
    assert webhook.hits == []  # not even the finished CRIT: the next full run tells it
    assert run.meta["notify_skipped"] == "run interrupted"
    again = RunRecord("r-next", "nightly")
    again.hosts, again.results = run.hosts, run.results[1:]
    fleet.history.start_run(again)
    after_run(again, fleet.context(again))
    assert [h.json()["alerts"][0]["host"] for h in webhook.hits] == ["web2"]
