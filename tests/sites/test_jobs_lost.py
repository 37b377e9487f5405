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
from upkeeper.sites.jobs import build_job
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
        # A job the hub could not withdraw (say it was cut off): the worker itself
        # refuses to run it past its deadline and reports it expired.
        late = build_job(pb, inv.hosts["e1"], "acme", "late-run", time.time() - 1,
                         check_mode=False, force=False, allow_anytime=False,
                         has_actions=False)
        assert hub.js is not None
        hub.call(hub.js.publish(subjects.jobs_subject("acme"), late.to_bytes()))
        worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins)
        worker.start()
        try:
            # The run's own job was withdrawn at its deadline: acked unrun.
            wait_for(lambda: worker.worker.stats["resent"] == 1, 20, "the withdrawn job")
            wait_for(lambda: worker.worker.stats["expired"] == 1, 20, "the expired job")
        finally:
            worker.stop()
    finally:
        hub.close()
    assert worker.worker.stats["ran"] == 0
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


def test_jobs_of_an_interrupted_run_are_withdrawn(nats_server: NatsServer,
                                                  tmp_path: Path) -> None:
    effects = tmp_path / "effects"
    pb, inv, plugins = site_setup(tmp_path, {"i1": {"site": "acme"}},
                                  f"echo ran >> {effects}")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=3)).start()
    stop = threading.Event()
    runner, runs = in_thread(lambda: run_playbook(
        pb, inv, plugins, history, stop_event=stop, remote=hub.remote(time.time() + 600)))
    try:
        wait_for(lambda: history.query("SELECT 1 FROM site_jobs"), 20, "the job queued")
        stop.set()
        runner.join(30)
        assert runs[0].results[0].summary == "run interrupted before site workers answered"
        worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins)
        worker.start()
        try:
            wait_for(lambda: worker.worker.stats["resent"] == 1, 20, "the worker to get it")
        finally:
            worker.stop()
    finally:
        hub.close()
    assert worker.worker.stats["ran"] == 0
    assert not effects.exists()
