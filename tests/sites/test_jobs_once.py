"""Guarantee 3: each job takes effect once. A worker that stalls past ack_wait and acks
late gets its job redelivered to another worker (JetStream accepts the late ack, nats-server
#4786); the lease says the job is done, so it is not run again. Side effects are counted
(lines a check appends to a file), not messages."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import nats
import pytest
from pydantic import BaseModel

from tests.sites.jobhelpers import WorkerThread, site_setup, wait_for
from tests.sites.natsserver import NatsServer
from upkeeper import hookimpl
from upkeeper.checks import Action, Check, CheckContext
from upkeeper.engine.playbook import Playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.models import Result, RunRecord, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.sites import subjects
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History

TRIALS = 50
ACK_WAIT = 1.0


def consumer_idle(url: str, site: str) -> bool:
    async def check() -> bool:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info(subjects.jobs_stream(site),
                                                      subjects.CONSUMER)
            return bool(info.num_pending == 0 and info.num_ack_pending == 0)
        finally:
            await nc.close()
    return asyncio.run(check())


def test_late_ack_after_redelivery_takes_effect_once(nats_server: NatsServer,
                                                     tmp_path: Path) -> None:
    effects = tmp_path / "effects.log"
    hosts = {f"h{i:02d}": {"site": "acme"} for i in range(TRIALS)}
    pb, inv, plugins = site_setup(
        tmp_path, hosts, f"echo {{{{ inventory_hostname }}}} >> {effects}")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history,
              settings=SiteSettings(ack_wait=ACK_WAIT, heartbeat=0.5)).start()
    stalling = WorkerThread("acme", nats_server.url, tmp_path / "a", plugins=plugins,
                            name="stalls", options=WorkerOptions(
                                concurrency=TRIALS, stall_before_ack=ACK_WAIT * 3,
                                fetch_timeout=1.0))
    other = WorkerThread("acme", nats_server.url, tmp_path / "b", plugins=plugins,
                         name="other", options=WorkerOptions(concurrency=4,
                                                             fetch_timeout=1.0))
    try:
        stalling.start()
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 60))
        # Every job ran at the stalling worker, which now sits on its acks.
        other.start()
        wait_for(lambda: other.worker.stats["resent"] >= TRIALS, 30,
                 "the redelivered jobs to reach the other worker")
        wait_for(lambda: consumer_idle(nats_server.url, "acme"), 30, "all jobs acked")
    finally:
        stalling.stop()
        other.stop()
        hub.close()
    lines = effects.read_text().splitlines()
    assert sorted(lines) == sorted(hosts), "a job took effect twice or not at all"
    assert other.worker.stats["ran"] == 0
    assert [r.status for r in run.results] == [Status.OK] * TRIALS
    stored = history.query("SELECT host, count(*) AS n FROM results GROUP BY host")
    assert {r["host"]: r["n"] for r in stored} == {h: 1 for h in hosts}


def test_long_job_is_not_redelivered(nats_server: NatsServer, tmp_path: Path) -> None:
    """Guarantee 6: a job running 3.5 x ack_wait keeps its message (in_progress at a third
    of ack_wait) and its lease; the idle second worker never gets it."""
    effects = tmp_path / "effects.log"
    pb, inv, plugins = site_setup(tmp_path, {"long": {"site": "acme"}},
                                  f"sleep {ACK_WAIT * 3.5}; echo ran >> {effects}")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=ACK_WAIT)).start()
    workers = [WorkerThread("acme", nats_server.url, tmp_path / f"w{i}", plugins=plugins,
                            name=f"w{i}", options=WorkerOptions(fetch_timeout=1.0))
               for i in range(2)]
    try:
        for w in workers:
            w.start()
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 60))
    finally:
        for w in workers:
            w.stop()
        hub.close()
    assert [r.status for r in run.results] == [Status.OK]
    assert effects.read_text() == "ran\n"
    assert sum(w.worker.stats["jobs"] for w in workers) == 1, "the job was redelivered"


class HoldParams(BaseModel):
    path: str
    hold: str


class AppendAction(Action[HoldParams]):
    """Changes the host (appends a line), then waits while ``hold`` exists."""

    name = "test.append_action"
    Params = HoldParams
    platforms = ("*",)
    needs_window = False

    def run(self, ctx: CheckContext[HoldParams]) -> Result:
        with open(ctx.params.path, "a") as f:
            f.write(f"{ctx.host.name}\n")
        while Path(ctx.params.hold).exists():
            time.sleep(0.05)
        return Result(Status.OK, "changed", changed=True)


class ActionPlugin:
    @hookimpl
    def upkeeper_register_checks(self) -> list[type[Check[Any]]]:
        return [AppendAction]


def test_action_of_a_lost_worker_is_not_run_again(nats_server: NatsServer,
                                                  tmp_path: Path) -> None:
    effects, hold = tmp_path / "effects.log", tmp_path / "hold"
    hold.touch()
    inv_path = tmp_path / "inventory.yml"
    inv_path.write_text("all:\n  hosts:\n    act1:\n      ansible_connection: local\n"
                        "      site: acme\n")
    plugins = get_plugin_manager(extra_plugins=[("actions", ActionPlugin())])
    pb = Playbook.model_validate({"name": "act", "hosts": "all", "checks": [
        {"check": "test.append_action", "params": {"path": str(effects), "hold": str(hold)}}]})
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=ACK_WAIT)).start()
    first = WorkerThread("acme", nats_server.url, tmp_path / "a", plugins=plugins, name="a",
                         options=WorkerOptions(fetch_timeout=1.0))
    second = WorkerThread("acme", nats_server.url, tmp_path / "b", plugins=plugins, name="b",
                          options=WorkerOptions(fetch_timeout=1.0))
    runs: list[RunRecord] = []
    runner = threading.Thread(target=lambda: runs.append(run_playbook(
        pb, load_inventory([str(inv_path)]), plugins, history,
        remote=hub.remote(time.time() + 60))))
    try:
        first.start()
        runner.start()
        wait_for(effects.exists, 20, "the action to start at the first worker")
        first.lose()
        second.start()
        runner.join(30)
    finally:
        hold.unlink()
        second.stop()
        first.stop()
        hub.close()
    assert [r.status for r in runs[0].results] == [Status.UNKNOWN]
    assert runs[0].results[0].summary.startswith("a worker was lost while this job's actions")
    assert effects.read_text() == "act1\n"
    assert second.worker.stats["ran"] == 0


def test_watchdog_recreates_a_pull_loop_gone_silent(nats_server: NatsServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """nats.py #504: after a reconnect a pull request can hang for good. Here the first
    fetch on each stream (the worker's jobs, the hub's results) never returns; both
    watchdogs replace their silent loop and the job still runs and lands."""
    from nats.js.client import JetStreamContext

    real_fetch = JetStreamContext.PullSubscription.fetch
    hung: set[str] = set()

    async def fetch_hanging_once(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self._stream not in hung:
            hung.add(self._stream)
            await asyncio.Event().wait()
        return await real_fetch(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamContext.PullSubscription, "fetch", fetch_hanging_once)
    pb, inv, plugins = site_setup(tmp_path, {"wd": {"site": "acme"}}, "echo ok")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=ACK_WAIT)).start()
    worker = WorkerThread("acme", nats_server.url, tmp_path / "w", plugins=plugins,
                          options=WorkerOptions(concurrency=1, fetch_timeout=0.3))
    try:
        worker.start()
        run = run_playbook(pb, inv, plugins, history, remote=hub.remote(time.time() + 30))
    finally:
        worker.stop()
        hub.close()
    assert hung == {"UPK_RESULTS", "UPK_JOBS_acme"}
    assert worker.worker.stats["restarts"] >= 1 and hub.stats["restarts"] >= 1
    assert [r.status for r in run.results] == [Status.OK]
