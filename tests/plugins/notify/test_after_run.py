"""Alerting that is not silent and not noisy, end to end with real loopback servers:
recipients from host vars, validation per host, failed deliveries in history and
``upkeeper status``, unreachable hosts told once per client, inert chat bodies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeeper.after_run.context import RunContext
from upkeeper.after_run.ledger import failing_channels
from upkeeper.after_run.notify_config import parse_notify
from upkeeper.after_run.pipeline import after_run
from upkeeper.after_run.targets import host_context, render_params
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.models import Host, RunRecord, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History
from upkeeper_notify.testserver import (
    SMTP_PASSWORD,
    SMTP_USER,
    SMTPServer,
    WebhookServer,
    free_port,
)

from .helpers import ScriptedPlugin, write_inventory

ROOT = Path(__file__).resolve().parents[3]
PW_ENV = "UPK_TEST_SMTP_PASSWORD"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PW_ENV, SMTP_PASSWORD)


def email(smtp: SMTPServer, **over: Any) -> dict[str, Any]:
    return {"email": {"host": smtp.host, "port": smtp.port, "username": SMTP_USER,
                      "password": "{{ env.UPK_TEST_SMTP_PASSWORD }}",
                      "from": "upkeeper@msp.example", "ca_file": smtp.ca_file, "timeout": 10,
                      "backoff": 0, **over}}


def write(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def run_once(tmp: Path, book: Path, hosts: dict[str, dict[str, Any]],
             history: History) -> RunRecord:
    plugins = get_plugin_manager(extra_plugins=[("scripted", ScriptedPlugin())])
    pb = load_playbook(book, plugins.registry)
    inv = load_inventory([write_inventory(tmp / "inventory.yml", hosts)])
    run = run_playbook(pb, inv, plugins, history)
    after_run(run, RunContext.for_run(run, pb, history, plugins, inventory=inv))
    return run


def test_each_clients_alerts_go_to_its_own_helpdesk(tmp_path: Path, smtp: SMTPServer) -> None:
    book = write(tmp_path / "pb.yml", {
        "name": "nightly", "checks": [{"check": "test.scripted", "name": "scripted"}],
        "notify": {"digest": True, "channels": [email(smtp, to="{{ notify_email }}")]}})
    hosts = {"a1": {"client": "Acme", "notify_email": "it@acme.example",
                    "scripted_status": "CRIT"},
             "a2": {"client": "Acme", "notify_email": "it@acme.example",
                    "scripted_status": "WARN"},
             "g1": {"client": "Globex", "notify_email": "helpdesk@globex.example",
                    "scripted_status": "CRIT"}}
    run = run_once(tmp_path, book, hosts, History(tmp_path / "h.sqlite3"))
    sent = sorted((rcpt, msg["Subject"]) for (_, rcpt), msg in
                  zip(smtp.mailbox.envelopes, smtp.mailbox.messages, strict=True))
    assert sent == [(["helpdesk@globex.example"], "[upkeeper] CRIT: Globex/g1 scripted: "
                                                  "scripted CRIT"),
                    (["it@acme.example"], "[upkeeper] CRIT: Acme: 2 problems")]
    assert sorted(d["target"] for d in run.meta["notifications"]) == [
        "helpdesk@globex.example", "it@acme.example"]


def test_example_playbook_routes_by_the_example_inventorys_notify_email() -> None:
    registry = get_plugin_manager().registry
    pb = load_playbook(ROOT / "playbooks" / "nightly-health.yml", registry)
    cfg = parse_notify(pb.notify)
    assert cfg is not None
    inv = load_inventory([ROOT / "inventories" / "msp-example"])
    chan = next(c for c in cfg.channels if c.notifier == "email")
    to = {}
    for h in inv.select("all"):
        host = Host(h.name, dict(h.vars), list(h.groups))
        to[h.name] = render_params(chan, host_context(pb.vars, host))["to"]
    assert to["acme-web01"] == to["acme-dc01"] == "it@acme.example"
    assert to["globex-db01"] == "helpdesk@globex.example"


def upk(*args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_validate_renders_notify_settings_for_every_host(tmp_path: Path) -> None:
    book = write(tmp_path / "pb.yml", {
        "name": "n", "checks": ["system.uptime"],
        "notify": [{"email": {"host": "mx.example", "from": "u@msp.example",
                              "to": "{{ notify_email }}"}},
                   {"webhook": {"url": "{{ hook_url }}"}}]})
    inv = write(tmp_path / "inv.yml", {"all": {"vars": {"ansible_connection": "local"},
                                                "hosts": {
        "ok1": {"notify_email": "it@acme.example", "hook_url": "https://hooks.example/x"},
        "nomail": {"hook_url": "https://hooks.example/x"},
        "badurl": {"notify_email": "it@acme.example", "hook_url": "ftp://nope"}}}})
    res = upk("validate", str(book), "-i", str(inv))
    assert res.returncode == 3
    lines = book.read_text().splitlines()
    to_line = next(i for i, t in enumerate(lines, 1) if "notify_email" in t)
    url_line = next(i for i, t in enumerate(lines, 1) if "hook_url" in t)
    assert (f"{book}:{to_line}: notify: email: to: undefined variable 'notify_email' for "
            "host nomail (define it in host/group vars") in res.stderr
    assert (f"{book}:{url_line}: notify: webhook: url: url must start with http:// or "
            "https:// for host badurl") in res.stderr
    assert "ok1" not in res.stderr
    # run warns about the same problems but runs every host: one client's missing
    # notify_email must not stop every client's checks (its delivery is recorded failed)
    ran = upk("run", str(book), "-i", str(inv))
    assert ran.returncode != 3, ran.stderr
    assert "undefined variable 'notify_email' for host nomail" in ran.stderr
    assert all(h in ran.stdout for h in ("ok1", "nomail", "badurl"))


def test_unreachable_hosts_are_one_message_per_channel(
        tmp_path: Path, smtp: SMTPServer, webhook: WebhookServer) -> None:
    """Ten hosts of one client that refuse SSH, six checks each: 60 UNKNOWN results are
    stored, and each channel gets one message naming the ten hosts; when they answer
    again, one recovery message each."""
    checks = [{"check": "system.command", "name": f"c{i}", "params": {"command": "echo ok"}}
              for i in range(6)]
    book = write(tmp_path / "pb.yml", {"name": "fleet", "checks": checks, "notify": {
        "channels": [email(smtp, to="noc@msp.example"),
                     {"webhook": {"url": webhook.url, "backoff": 0}}]}})
    port = free_port()  # nothing listens: connection refused
    down = {f"web{i:02d}": {"client": "Acme", "ansible_connection": "ssh",
                            "ansible_host": "127.0.0.1", "ansible_port": port,
                            "ssh_connect_retries": 0} for i in range(10)}
    history = History(tmp_path / "h.sqlite3")
    run = run_once(tmp_path, book, down, history)
    assert len(run.results) == 60 and {r.status for r in run.results} == {Status.UNKNOWN}
    assert history.query("SELECT COUNT(*) FROM results WHERE status='UNKNOWN'")[0][0] == 60
    assert len(webhook.hits) == 1 and len(smtp.mailbox.messages) == 1
    body = webhook.hits[0].json()
    assert body["subject"] == "UNKNOWN: Acme: 10 hosts unreachable"
    assert sorted(a["host"] for a in body["alerts"]) == sorted(down)
    assert all(a["summary"].startswith("unreachable: ") for a in body["alerts"])
    assert smtp.mailbox.messages[0]["Subject"] == "[upkeeper] " + body["subject"]
    run_once(tmp_path, book, down, history)  # still down: nothing new
    assert len(webhook.hits) == 1
    back = {name: {"client": "Acme", "ansible_connection": "local"} for name in down}
    run_once(tmp_path, book, back, history)
    assert len(webhook.hits) == 2 and len(smtp.mailbox.messages) == 2
    assert webhook.hits[1].json()["subject"] == "OK: Acme: 10 recovered"


@pytest.fixture
def serve(tmp_path: Path, state_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A real ``upkeeper serve`` (nothing scheduled), so ``status`` has a live daemon."""
    books = tmp_path / "scheduled"
    books.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "upkeeper", "serve", "--playbooks",
                             str(books), "--heartbeat", "1s", "--max-runtime", "5m"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while upk("status").returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.2)
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


def test_failed_delivery_is_recorded_and_status_warns(
        tmp_path: Path, webhook: WebhookServer, serve: subprocess.Popen[str],
        state_dir: Path) -> None:
    book = write(tmp_path / "pb.yml", {
        "name": "nightly", "checks": [{"check": "system.command", "name": "disk",
                                       "params": {"command": "echo bad; exit 2"}}],
        "notify": [{"webhook": {"url": webhook.url + "/T000/secret-path", "retries": 1,
                                "backoff": 0}}]})
    webhook.script[:] = [500, 500]
    res = upk("run", str(book))
    assert res.returncode == 2  # the run's own outcome, not the webhook's
    status = upk("status")
    assert status.returncode == 1, status.stdout
    line = next(t for t in status.stdout.splitlines() if t.startswith("alerting FAILED"))
    assert "HTTP 500" in line and f"{webhook.url}" in line and "secret-path" not in line
    failing = failing_channels(History(state_dir / "history.sqlite3"))
    assert [(f["failures"], f["notifier"]) for f in failing] == [(1, "webhook")]
    doc = json.loads(upk("status", "--format", "json").stdout)
    assert doc["failing_channels"][0]["error"].endswith("answered HTTP 500 Internal Server "
                                                        "Error")
    # the alert was never told, so the next run sends it; the channel is healthy again
    assert upk("run", str(book)).returncode == 2
    assert len(webhook.hits) == 3
    assert upk("status").returncode == 0


def test_chat_bodies_are_inert(tmp_path: Path, webhook: WebhookServer,
                               smtp: SMTPServer) -> None:
    hostile = "<!channel> disk <@U123> & <!here> <https://evil.example|login> \x1b[31mred\x07"
    book = write(tmp_path / "pb.yml", {
        "name": "chat", "checks": [{"check": "test.scripted", "name": "scripted"}],
        "notify": [{"webhook": {"url": webhook.url + "/slack", "format": "slack",
                                "backoff": 0}},
                   {"webhook": {"url": webhook.url + "/teams", "format": "teams",
                                "backoff": 0}},
                   email(smtp, to="noc@msp.example")]})
    run_once(tmp_path, book, {"web1": {"client": "Acme", "scripted_status": "CRIT",
                                       "scripted_summary": hostile}},
             History(tmp_path / "h.sqlite3"))
    by_path = {h.path: h.body.decode() for h in webhook.hits}
    for body in by_path.values():
        assert "<!channel>" not in body and "<@U123>" not in body and "<!here>" not in body
        assert "<https://evil" not in body and "\\u001b" not in body and "\\u0007" not in body
    slack = json.loads(by_path["/slack"])
    assert "&lt;!channel&gt; disk &lt;@U123&gt; &amp; &lt;!here&gt;" in slack["text"]
    assert "&lt;!channel&gt;" in slack["blocks"][1]["text"]["text"]
    teams = json.loads(by_path["/teams"])
    fact = teams["attachments"][0]["content"]["body"][1]["facts"][0]["value"]
    assert fact.startswith("CRIT: &lt;!channel&gt; disk")
    msg = smtp.mailbox.messages[0]
    assert "\x1b" not in str(msg) and "\x07" not in str(msg)
