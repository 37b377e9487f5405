"""``upkeeper run --hub`` and ``upkeeper worker`` as real processes on a real nats-server:
results land in the hub's history; kill -9 of a worker mid-job loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sites.jobhelpers import wait_for, worker_process
from tests.sites.natsserver import NatsServer
from upkeeper.store.history import History

FAST_ENV = {"UPKEEPER_SITES_ACK_WAIT": "3", "UPKEEPER_SITES_HEARTBEAT": "0.5",
            "UPKEEPER_SITES_OFFLINE_AFTER": "3"}


def write_site(tmp: Path, hosts: dict[str, str], command: str) -> tuple[Path, Path]:
    inv = tmp / "inventory.yml"
    lines = ["all:", "  hosts:"]
    for host, site in hosts.items():
        lines += [f"    {host}:", "      ansible_connection: local"]
        if site:
            lines.append(f"      site: {site}")
    inv.write_text("\n".join(lines) + "\n")
    pb = tmp / "playbook.yml"
    pb.write_text("name: site run\nhosts: all\nchecks:\n  - check: system.command\n"
                  f"    params:\n      command: {command!r}\n")
    return pb, inv


def upkeeper_run(tmp: Path, pb: Path, inv: Path, url: str, *extra: str,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv), "--hub", url,
         "--state-dir", str(tmp / "hub"), "--format", "json", *extra],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **FAST_ENV})


def test_run_with_hub_and_worker_processes(nats_server: NatsServer, tmp_path: Path) -> None:
    pb, inv = write_site(tmp_path, {"a1": "acme", "a2": "acme", "h": ""},
                         "echo from {{ inventory_hostname }}")
    worker = worker_process("acme", nats_server.url, tmp_path / "w", env=FAST_ENV)
    try:
        done = upkeeper_run(tmp_path, pb, inv, nats_server.url)
    finally:
        worker.terminate()
        worker.wait(10)
    assert done.returncode == 0, done.stdout + done.stderr
    history = History(tmp_path / "hub" / "history.sqlite3")
    rows = history.query("SELECT host, status, summary FROM results")
    assert sorted((r["host"], r["status"]) for r in rows) == [
        ("a1", "OK"), ("a2", "OK"), ("h", "OK")]


@pytest.mark.slow
def test_kill_9_mid_job_another_worker_finishes_once(nats_server: NatsServer,
                                                     tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # The first attempt leaves a mark and hangs (the worker is killed there); the retry
    # finds the mark and finishes. Effects counted: lines appended to done.log.
    command = (f"if [ -e {marks}/started ]; then echo once >> {marks}/done.log; "
               f"else touch {marks}/started; sleep 60; fi")
    pb, inv = write_site(tmp_path, {"k1": "acme"}, command)
    first = worker_process("acme", nats_server.url, tmp_path / "w1", env=FAST_ENV)
    run = subprocess.Popen(
        [sys.executable, "-m", "upkeeper", "run", str(pb), "-i", str(inv), "--hub",
         nats_server.url, "--state-dir", str(tmp_path / "hub"), "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **FAST_ENV})
    try:
        wait_for(lambda: (marks / "started").exists(), 30, "the first worker to start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        second = worker_process("acme", nats_server.url, tmp_path / "w2", env=FAST_ENV)
        try:
            wait_for(lambda: (marks / "done.log").exists(), 3 + 5 + 10,
                     "another worker to finish the job")
            took = time.monotonic() - killed
            out, err = run.communicate(timeout=30)
        finally:
            second.terminate()
            second.wait(10)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err
    assert took < 3 + 5 + 3  # ack_wait + 5 s (+ the second worker's start-up)
    assert (marks / "done.log").read_text() == "once\n"
    history = History(tmp_path / "hub" / "history.sqlite3")
    rows = history.query("SELECT host, status FROM results")
    assert [(r["host"], r["status"]) for r in rows] == [("k1", "OK")]


def test_worker_refuses_a_broken_secrets_file_by_name(tmp_path: Path) -> None:
    bad = tmp_path / "secrets.yml"
    bad.write_text("- just\n- a list\n")
    done = subprocess.run(
        [sys.executable, "-m", "upkeeper", "worker", "--site", "acme", "--hub",
         "nats://127.0.0.1:1", "--secrets", str(bad), "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    assert f"{bad}: expected 'vars:' and 'hosts:' mappings" in done.stderr


def test_worker_refuses_a_bad_site_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "upkeeper", "worker", "--site", "Acme HQ", "--hub",
         "nats://127.0.0.1:1", "--state-dir", str(tmp_path / "s")],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 3 and "invalid site name 'Acme HQ'" in done.stderr
