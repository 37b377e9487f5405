"""Guarantee 4, nothing lost: results made while the server is away wait in the worker's
outbox and arrive once (no re-run); a job past its deadline is recorded, not run late; a
job that fails max_deliver times is one dead-letter row and one UNKNOWN result."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import nats

from tests.sites.jobhelpers import WorkerThread, site_setup, wait_for
from tests.sites.natsserver import NatsServer
from upkeeper.engine.runner import run_playbook
from upkeeper.models import RunRecord, Status
from upkeeper.sites import subjects
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History


def in_thread(fn: object) -> tuple[threading.Thread, list[RunRecord]]:
    out: list[RunRecord] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)  # type: ignore[operator]
    t.start()
    return t, out


def test_result_made_while_server_is_down_waits_in_outbox(nats_server: NatsServer,
                                                          tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    pb, inv, plugins = site_setup(
        tmp_path, {"o1": {"site": "acme"}},
        f"touch {marks}/started; while [ ! -e {marks}/go ]; do sleep 0.05; done; "
        f"echo ran >> {marks}/effects")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=3)).start()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          options=WorkerOptions(fetch_timeout=1.0))
    runner, runs = in_thread(lambda: run_playbook(pb, inv, plugins, history,
                                                  remote=hub.remote(time.time() + 60)))
    try:
        worker.start()
        wait_for(lambda: (marks / "started").exists(), 20, "the job to start")
        nats_server.stop()
        (marks / "go").touch()
        wait_for(lambda: len(worker.worker.outbox) == 1, 20, "the result in the outbox")
        time.sleep(0.5)  # it stays there while the server is away
        assert len(worker.worker.outbox) == 1
        nats_server.start()
        runner.join(60)
        wait_for(lambda: len(worker.worker.outbox) == 0, 20, "the outbox to drain")
    finally:
        worker.stop()
        hub.close()
    assert [(r.host, r.status) for r in runs[0].results] == [("o1", Status.OK)]
    assert (marks / "effects").read_text() == "ran\n"
    assert len(history.query("SELECT 1 FROM results")) == 1


def test_expired_job_is_recorded_not_run_late(nats_server: NatsServer,
                                              tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    pb, inv, plugins = site_setup(tmp_path, {"e1": {"site": "acme"}},
                                  f"echo ran >> {effects}")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=3)).start()
    try:
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 1))
        assert [r.status for r in run.results] == [Status.UNKNOWN]
        assert run.results[0].summary.startswith("site offline")
        worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins)
        worker.start()
        try:
            wait_for(lambda: worker.worker.stats["expired"] == 1, 20, "the worker to see it")
            wait_for(lambda: hub.stats["duplicates"] == 1, 20, "its late result dropped")
        finally:
            worker.stop()
    finally:
        hub.close()
    assert not effects.exists()
    assert len(history.query("SELECT 1 FROM results")) == 1


def test_job_failing_max_deliver_times_is_one_dead_letter(nats_server: NatsServer,
                                                          tmp_path: Path) -> None:
    pb, inv, plugins = site_setup(tmp_path, {"d1": {"site": "acme"}}, "true")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history,
              settings=SiteSettings(ack_wait=1, max_deliver=2)).start()
    stop = threading.Event()

    def crashing_worker() -> None:
        """Takes the job and never acks it, as a worker dying on it every time would."""
        async def go() -> None:
            nc = await nats.connect(nats_server.url)
            js = nc.jetstream()
            while not stop.is_set():
                try:
                    sub = await js.pull_subscribe_bind(durable=subjects.CONSUMER,
                                                       stream=subjects.jobs_stream("acme"))
                    await sub.fetch(1, timeout=0.5)
                except Exception:
                    await asyncio.sleep(0.1)
            await nc.close()
        asyncio.run(go())

    crasher = threading.Thread(target=crashing_worker, daemon=True)
    crasher.start()
    try:
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 30))
    finally:
        stop.set()
        crasher.join(10)
        hub.close()
    assert [r.status for r in run.results] == [Status.UNKNOWN]
    assert run.results[0].summary.startswith("dead letter: the job failed on 2 deliveries")
    rows = history.query("SELECT host, deliveries FROM site_dead_letters")
    assert [(r["host"], r["deliveries"]) for r in rows] == [("d1", 2)]
