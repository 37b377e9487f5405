"""``serve --hub`` with real processes: workers heartbeat, a site whose workers are all
gone is offline (``upkeeper status`` exits 1, its checks UNKNOWN "site offline", told once
per client as an unreachable group), and when a worker returns the queued jobs run:
0 lost, 0 twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sites.jobhelpers import wait_for, worker_process
from tests.sites.natsserver import NatsServer
from tests.sites.test_jobs_cli import FAST_ENV
from upkeeper.store.history import History


def status(state: Path) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "upkeeper", "status", "--state-dir",
                           str(state)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **FAST_ENV})
    return done.returncode, done.stdout + done.stderr


def results(db: Path) -> list[dict[str, str]]:
    if not db.exists():
        return []
    h = History(db)
    try:
        return [dict(r) for r in h.query(
            "SELECT run_id, host, status, summary FROM results WHERE host='s1'")]
    finally:
        h.close()


@pytest.mark.slow
def test_site_offline_and_back(nats_server: NatsServer, tmp_path: Path) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "tick.yml").write_text(
        "name: tick\nhosts: all\nschedule:\n  every: 2 seconds\nchecks:\n"
        "  - check: system.command\n    params:\n      command: echo tick\n")
    inv = tmp_path / "inventory.yml"
    inv.write_text("all:\n  hosts:\n    s1:\n      ansible_connection: local\n"
                   "      site: acme\n")
    state = tmp_path / "hub"
    db = state / "history.sqlite3"
    serve = subprocess.Popen(
        [sys.executable, "-m", "upkeeper", "serve", "--playbooks", str(books), "-i",
         str(inv), "--state-dir", str(state), "--hub", nats_server.url, "--catch-up", "4s",
         "--heartbeat", "1s"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **FAST_ENV})
    worker = worker_process("acme", nats_server.url, tmp_path / "w1", "--heartbeat", "0.5",
                            env=FAST_ENV)
    try:
        wait_for(lambda: any(r["status"] == "OK" for r in results(db)), 40, "a site result")
        out = status(state)[1]
        assert "site OFFLINE" not in out, out
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        # Exit 1 alone may be another warning first (the tick slot skipped while its run
        # still waits for the lost worker): wait for the offline site itself.
        wait_for(lambda: "site OFFLINE: acme" in status(state)[1], 30, "the site offline")
        assert status(state)[0] == 1
        wait_for(lambda: any(r["summary"].startswith("site offline") for r in results(db)),
                 40, "an UNKNOWN 'site offline' result")
        worker = worker_process("acme", nats_server.url, tmp_path / "w2", "--heartbeat",
                                "0.5", env=FAST_ENV)
        seen = len(results(db))
        wait_for(lambda: sum(r["status"] == "OK" for r in results(db)[seen:]) >= 2, 40,
                 "results after the worker came back")
        wait_for(lambda: "site OFFLINE" not in status(state)[1], 20, "the site to be live")
    finally:
        worker.terminate()
        serve.send_signal(signal.SIGTERM)
        serve.wait(30)
        worker.wait(10)
    rows = results(db)
    runs = [r["run_id"] for r in rows]
    assert len(runs) == len(set(runs)), "a job was recorded twice"
    h = History(db)
    jobs = h.query("SELECT run_id, state FROM site_jobs")
    h.close()
    assert {j["run_id"] for j in jobs if j["state"] != "queued"} <= set(runs), "a result lost"
