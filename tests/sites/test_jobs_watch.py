"""Guarantee 8 outside runs: while ``serve --hub`` runs, a site whose workers all go
silent raises one "site offline" alert (one message for the site's hosts, not one per
host), once, and one recovery when a worker is back, with no run scheduled."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from tests.sites.jobhelpers import WorkerThread, site_setup, wait_for
from tests.sites.natsserver import NatsServer
from upkeeper.after_run.context import RunContext
from upkeeper.after_run.pipeline import after_run
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.plugins import get_plugin_manager
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.watch import Served, SiteWatch
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History
from upkeeper.testing import FakeNotifier
from upkeeper_notify.testserver import webhook_server

FAST = SiteSettings(ack_wait=3.0, heartbeat=0.5, offline_after=2.0)
BEAT = WorkerOptions(heartbeat=0.2, fetch_timeout=1.0)


def test_site_offline_and_back_between_runs_is_told_once_each(nats_server: NatsServer,
                                                               tmp_path: Path) -> None:
    FakeNotifier.reset()
    _, inv, _ = site_setup(tmp_path, {f"o{i}": {"site": "acme", "client": "acme"}
                                      for i in range(4)}, "true")
    (tmp_path / "alerting.yml").write_text(yaml.safe_dump({
        "name": "alerting", "hosts": "all", "notify": [{"notifier": "fake"}],
        "checks": [{"check": "system.command", "params": {"command": "true"}}]}))
    plugins = get_plugin_manager(extra_plugins=[("fake", FakeNotifier.plugin())])
    pb = load_playbook(tmp_path / "alerting.yml", plugins.registry)
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=FAST).start()
    hub.ensure_site("acme")
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          options=BEAT).start()
    watch = SiteWatch(hub, history, lambda: Served([pb], inv, plugins), interval=0.2)
    try:
        wait_for(lambda: "acme" in hub.last_seen, 20, "the worker's heartbeat")
        watch.start()
        wait_for(lambda: watch.known.get("acme") is False, 10, "the site seen online")
        assert FakeNotifier.sent == []
        worker.stop()
        wait_for(lambda: FakeNotifier.sent, 20, "the site offline alert")
        for _ in range(5):  # later ticks and a restart of the watch tell nothing more
            watch.tick()
        SiteWatch(hub, history, lambda: Served([pb], inv, plugins)).tick()
        assert len(FakeNotifier.sent) == 1, [n.subject for n in FakeNotifier.sent]
        text = FakeNotifier.sent[0].text
        assert "site offline" in text and all(f"o{i}" in text for i in range(4))
        # A run while the site is offline does not tell it again either.
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 1))
        after_run(run, RunContext.for_run(run, pb, history, plugins, inventory=inv))
        assert len(FakeNotifier.sent) == 1
        back = WorkerThread("acme", nats_server.url, tmp_path / "w2", plugins=plugins,
                            options=BEAT).start()
        try:
            wait_for(lambda: len(FakeNotifier.sent) >= 2, 20, "the recovery")
        finally:
            back.stop()
        assert "back" in FakeNotifier.sent[1].text.lower() or \
            "recover" in FakeNotifier.sent[1].subject.lower(), FakeNotifier.sent[1].subject
        assert len(FakeNotifier.sent) == 2
    finally:
        watch.stop()
        worker.stop()
        hub.close()
        history.close()
        FakeNotifier.reset()


def worker_recorded(db: Path) -> bool:
    if not db.exists():
        return False
    history = History(db)
    try:
        return bool(history.query("SELECT 1 FROM site_workers WHERE site='acme'"))
    except Exception:  # serve has not created its tables yet
        return False
    finally:
        history.close()


@pytest.mark.slow
def test_serve_hub_alerts_a_silent_site_with_no_run_due(nats_server: NatsServer,
                                                        tmp_path: Path) -> None:
    plugins = get_plugin_manager()
    inv = tmp_path / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {
        f"o{i}": {"ansible_connection": "local", "site": "acme", "client": "acme"}
        for i in range(3)}}}))
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    provisioning = Hub(nats_server.url, History(tmp_path / "provision.db"), settings=FAST)
    provisioning.start().ensure_site("acme")
    provisioning.close()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          options=BEAT).start()
    later = (datetime.now(timezone.utc) + timedelta(hours=12)).strftime("%H:%M")
    with webhook_server() as hook:
        (playbooks / "nightly.yml").write_text(yaml.safe_dump({
            "name": "nightly", "hosts": "all", "schedule": {"every": "day", "at": later},
            "notify": [{"notifier": "webhook", "url": hook.url}],
            "checks": [{"check": "system.command", "params": {"command": "true"}}]}))
        env = {**os.environ, "UPKEEPER_SITES_HEARTBEAT": "0.5",
               "UPKEEPER_SITES_OFFLINE_AFTER": "2"}
        serve = subprocess.Popen(
            [sys.executable, "-m", "upkeeper", "--state-dir", str(tmp_path / "hub"),
             "serve", "--playbooks", str(playbooks), "-i", str(inv), "--hub",
             nats_server.url, "--max-runtime", "60s"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            db = tmp_path / "hub" / "history.sqlite3"
            wait_for(lambda: worker_recorded(db), 30, "the worker seen by serve")
            worker.stop()
            wait_for(lambda: hook.hits, 30, "the site offline alert")
            back = WorkerThread("acme", nats_server.url, tmp_path / "w2", plugins=plugins,
                                options=BEAT).start()
            try:
                wait_for(lambda: len(hook.hits) >= 2, 30, "the recovery")
            finally:
                back.stop()
        finally:
            serve.terminate()
            _, err = serve.communicate(timeout=60)
            worker.stop()
    first, second = hook.hits[0].json(), hook.hits[1].json()
    assert len(hook.hits) == 2, err.decode()[-2000:]
    assert "site offline" in str(first) and "o0" in str(first) and "o2" in str(first)
    assert "recovery" in str(second)
