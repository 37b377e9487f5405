"""Guarantee 5: nats-server restarts during active runs. Workers resume by themselves
(reconnect, watchdog over silent pull loops), every host gets exactly one real result,
and no job stays pending longer than 2 x ack_wait once the server is back."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.sites.jobhelpers import WorkerThread, site_setup
from tests.sites.natsserver import NatsServer
from upkeeper.engine.runner import run_playbook
from upkeeper.models import RunRecord, Status
from upkeeper.sites.hub import Hub
from upkeeper.sites.streams import SiteSettings
from upkeeper.sites.worker import WorkerOptions
from upkeeper.store.history import History

RESTARTS = int(os.environ.get("UPKEEPER_TEST_RESTARTS", "6"))
ACK_WAIT = 3.0
HOSTS = 8


@pytest.mark.slow
def test_workers_resume_after_repeated_server_restarts(nats_server: NatsServer,
                                                        tmp_path: Path) -> None:
    hosts = {f"r{i}": {"site": "acme"} for i in range(HOSTS)}
    pb, inv, plugins = site_setup(tmp_path, hosts, "sleep 2; echo ok")
    history = History(tmp_path / "hub.db")
    hub = Hub(nats_server.url, history, settings=SiteSettings(ack_wait=ACK_WAIT)).start()
    workers = [WorkerThread("acme", nats_server.url, tmp_path / f"w{i}", plugins=plugins,
                            name=f"w{i}", options=WorkerOptions(concurrency=4,
                                                                fetch_timeout=1.0))
               for i in range(2)]
    recovery: list[float] = []
    try:
        for w in workers:
            w.start()
        for _ in range(RESTARTS):
            runs: list[RunRecord] = []

            def one_run(out: list[RunRecord] = runs) -> None:
                out.append(run_playbook(pb, inv, plugins, history,
                                        remote=hub.remote(time.time() + 60)))

            t = threading.Thread(target=one_run)
            t.start()
            time.sleep(0.5)  # jobs published and being worked on
            nats_server.restart()
            back = time.monotonic()
            t.join(60)
            recovery.append(time.monotonic() - back)
            assert not t.is_alive()
            assert sorted(r.host for r in runs[0].results) == sorted(hosts)
            assert {r.status for r in runs[0].results} == {Status.OK}, [
                (r.host, r.summary) for r in runs[0].results if r.status is not Status.OK]
    finally:
        for w in workers:
            w.stop()
        hub.close()
    per_run = history.query("SELECT run_id, host, count(*) AS n FROM results"
                            " GROUP BY run_id, host")
    assert {r["n"] for r in per_run} == {1} and len(per_run) == RESTARTS * HOSTS
    # Jobs run 2 s each on 8 parallel slots: every job is done within 2 x ack_wait of
    # the server's return (plus their own 2 s).
    print("seconds from restart to run done:", [round(r, 2) for r in recovery])
    assert max(recovery) < 2 * ACK_WAIT + 2.0, recovery
