"""``serve`` under abuse, with real processes and signals: signal storms, SIGKILL with
commands running, a deleted lock file, absurd schedules, status of a killed daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.core.servehelp import Serve, processes_with, serving, until, write_playbook
from upkeeper.models import RunRecord
from upkeeper.schedule.daemon import Daemon, JobDef, LoadResult, Slot
from upkeeper.schedule.specs import ScheduleSpec, parse_spec
from upkeeper.store.history import History

__all__ = ["serving"]  # a fixture, used by name

UTC = timezone.utc


def _upkeeper(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_signal_storms_never_stop_the_heartbeat_or_sigterm(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    """Handlers used to call Event.set() on the lock the main loop's Event.wait() held:
    a SIGHUP at the wrong instant hung the daemon for good (no heartbeat, SIGTERM
    ignored). Hundreds of signals while slots run must change nothing."""
    pbs = tmp_path / "pb"
    write_playbook(pbs, "a", command="sleep 0.2; echo ok")
    write_playbook(pbs, "b", every="2 seconds", command="echo ok")
    s = serving(pbs, "--grace", "30s")
    s.until(lambda rows: any(r["state"] == "running" for r in rows))
    pid = s.proc.pid
    for _ in range(40):
        for _ in range(500):
            os.kill(pid, signal.SIGHUP)
        mark = s.health().get("heartbeat", "")
        s.beats_after(mark, timeout=60)
    for _ in range(200):
        os.kill(pid, signal.SIGHUP)
        os.kill(pid, signal.SIGTERM)
    # Grace (30 s) plus start-up slack: a hung daemon never gets here.
    assert s.wait(timeout=90) == 0, s.text()
    assert "stopping (SIGTERM)" in s.text()
    assert "Traceback" not in s.text()


SLEEP_DIRECT = "sleep 3000.25; echo done"  # sh forks: the sleep is a grandchild
SLEEP_GRANDCHILD = "sleep 3001.25; echo done"


@pytest.mark.slow
def test_sigkill_leaves_no_command_running_and_restart_finds_nothing(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    """The shell dies with the daemon (parent-death signal), the sleep it forked is
    ended by the sentinel; the restarted daemon then finds nothing left."""
    pbs = tmp_path / "pb"
    write_playbook(pbs, "nap", every="1 seconds", command=SLEEP_DIRECT)
    first = serving(pbs)
    until(lambda: processes_with("3000.25"), 60, "the sleep command")
    first.signal(signal.SIGKILL)
    first.wait()
    until(lambda: not processes_with("3000.25"), 10, "the sleep to die with the daemon")
    write_playbook(pbs, "nap", every="1 hours", command="echo ok")
    second = serving(pbs)
    until(lambda: "commands left by a killed daemon" in second.text(), 60, "restart")
    assert "commands left by a killed daemon: none" in second.text()
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


@pytest.mark.slow
def test_restart_ends_what_a_killed_daemon_left(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    """``sh -c 'sleep ...; echo'`` forks: the parent-death signal reaches the shell, not
    the sleep. Had the sentinel been killed too (say, by the OOM killer), the restarted
    daemon finds the recorded group and ends it."""
    import re

    pbs = tmp_path / "pb"
    write_playbook(pbs, "nap", every="1 seconds", command=SLEEP_GRANDCHILD)
    first = serving(pbs)
    until(lambda: processes_with("sleep 3001.25"), 60, "the sleep command")
    found = re.search(r"sentinel pid (\d+)", first.text())
    assert found, first.text()
    os.kill(int(found.group(1)), signal.SIGKILL)
    first.signal(signal.SIGKILL)
    first.wait()
    # A command the new daemon must not touch: same user, its own session.
    bystander = subprocess.Popen(["sleep", "3002.25"], start_new_session=True)
    try:
        write_playbook(pbs, "nap", every="1 hours", command="echo ok")
        second = serving(pbs)
        until(lambda: "commands left by a killed daemon" in second.text(), 60, "restart")
        until(lambda: not processes_with("sleep 3001.25"), 10, "the leftover to end")
        assert "killed process group" in second.text()
        assert bystander.poll() is None
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
def test_deleting_the_lock_file_does_not_let_a_second_daemon_in(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    pbs = tmp_path / "pb"
    write_playbook(pbs, "a", every="1 hours")
    first = serving(pbs)
    until(lambda: first.health(), 60, "the first heartbeat")
    (first.state / "serve.lock").unlink()
    second = serving(pbs)
    assert second.wait(timeout=60) == 3, second.text()
    assert "another upkeeper serve (pid unknown: serve.lock was removed) holds the state" \
           " dir" in second.text()
    assert first.proc.poll() is None
    first.signal(signal.SIGTERM)
    assert first.wait() == 0


@pytest.mark.slow
def test_status_sees_a_killed_daemon_at_once(tmp_path: Path,
                                             serving: Callable[..., Serve]) -> None:
    pbs = tmp_path / "pb"
    write_playbook(pbs, "a", every="1 hours")
    s = serving(pbs, "--heartbeat", "1h")  # staleness alone would take hours
    until(lambda: s.health(), 60, "the first heartbeat")
    health = s.health()
    assert health["process"]["pid"] == s.proc.pid and health["process"]["start"]
    res = _upkeeper("status", "--state-dir", str(s.state))
    assert res.returncode == 0 and "serve: RUNNING" in res.stdout, res.stdout + res.stderr
    s.signal(signal.SIGKILL)
    s.wait()
    res = _upkeeper("status", "--state-dir", str(s.state))
    assert res.returncode == 2, res.stdout
    assert f"serve: DEAD (pid {s.proc.pid} is gone: killed or crashed" in res.stdout


BAD = """\
name: bad
hosts: all
schedule:
  every: 99999999999999 days
checks: [system.uptime]
"""


def test_validate_bounds_schedules(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD)
    res = _upkeeper("validate", str(bad))
    assert res.returncode == 3
    assert f"{bad}:4:3: schedule: every '99999999999999 days': longer than the limit" \
           f" of 10 years" in res.stderr


@pytest.mark.slow
def test_an_absurd_schedule_never_stops_the_other_playbooks(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    pbs = tmp_path / "pb"
    write_playbook(pbs, "good")
    (pbs / "bad.yml").write_text(BAD)
    s = serving(pbs)
    s.until(lambda rows: any(r["job"] == "good.yml" and r["state"] == "done" for r in rows))
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    assert f"{pbs / 'bad.yml'}:4:3: schedule: every" in s.text()


def test_a_job_that_cannot_be_scheduled_never_stops_the_others(tmp_path: Path) -> None:
    """Whatever slips past validation (here a spec built by hand) is one job's error."""
    huge = ScheduleSpec(index=0, unit="days", interval=10**14, at=None, timezone="UTC")
    jobs = {"bad.yml": JobDef("bad.yml", "bad", [huge]),
            "good.yml": JobDef("good.yml", "good", [parse_spec({"every": "1 minutes",
                                                                 "timezone": "UTC"}, 0)])}
    now = [datetime(2026, 11, 26, 12, tzinfo=UTC)]
    ran: list[str] = []

    def run(job: JobDef, slot: Slot, stop: threading.Event) -> RunRecord:
        ran.append(job.key)
        return RunRecord(slot.run_id, job.name)

    d = Daemon(History(tmp_path / "h.db"), lambda: LoadResult(jobs=dict(jobs)), run,
               clock=lambda: now[0])
    d.start()
    try:
        assert sorted(d.jobs) == ["good.yml"]
        assert "bad.yml: cannot be scheduled" in (d.last_error or "")
        now[0] += timedelta(minutes=1)
        d.tick()
        assert d.wait_idle() and ran == ["good.yml"]
    finally:
        d.shutdown()


RUN_PLAYBOOK = """\
name: many
checks:
""" + "".join(f"""  - name: c{i}
    check: system.command
    params: {{command: "echo result {i}"}}
""" for i in range(60))


def test_run_on_a_full_disk_prints_and_says_not_stored(tmp_path: Path) -> None:
    """The database opens (another process keeps its WAL files), then every write
    fails for lack of space: the run still prints all 60 results, logs one error, and
    its verdict says the results were not stored (exit 3). Once there is space again
    the next run is stored."""
    from tests.core.test_history import in_small_tmpfs, needs_unshare

    if needs_unshare.args[0]:
        pytest.skip(needs_unshare.kwargs["reason"])
    pb = tmp_path / "many.yml"
    pb.write_text(RUN_PLAYBOOK)
    holder = tmp_path / "hold.py"
    holder.write_text("import sqlite3, sys, time\n"
                      "c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1 FROM runs')\n"
                      "print('open', flush=True); time.sleep(120)\n")
    script = f"""
"$PY" -m upkeeper run {pb} --state-dir "$D" > "$D/../first.out" 2>&1
"$PY" {holder} "$D/history.sqlite3" > "$D/../holder.out" & HOLDER=$!
while ! grep -q open "$D/../holder.out"; do sleep 0.05; done
dd if=/dev/zero of="$D/fill" bs=4k 2>/dev/null || true
dd if=/dev/zero of="$D/fill2" bs=1 2>/dev/null || true
set +e
"$PY" -m upkeeper run {pb} --state-dir "$D" > "$D/../full.out" 2> "$D/../full.err"
echo "exit=$?" >> "$D/../full.out"
rm -f "$D/fill" "$D/fill2"
"$PY" -m upkeeper run {pb} --state-dir "$D" > "$D/../after.out" 2>&1
echo "exit=$?" >> "$D/../after.out"
kill $HOLDER
"""
    in_small_tmpfs(tmp_path, script, size="2m")
    out = (tmp_path / "full.out").read_text().splitlines()
    err = (tmp_path / "full.err").read_text()
    assert out[0].startswith("UNKNOWN: 60 OK, 1 UNKNOWN - run ") and out[0].endswith(
        " - results not stored"), out[:2]
    assert sum(line.startswith("OK ") for line in out) == 60
    assert out[-1] == "exit=3"
    assert "not stored in history" in out[-2] and "disk is full" in out[-2]
    errors = [line for line in err.splitlines() if "ERROR" in line or "error" in line]
    assert len(errors) == 1 and "disk is full" in errors[0], err
    assert "Traceback" not in err
    after = (tmp_path / "after.out").read_text()
    assert "OK: 60 OK - run " in after and after.rstrip().endswith("exit=0"), after


def test_a_command_dies_with_the_process_that_started_it() -> None:
    """The local transport's children get PR_SET_PDEATHSIG: SIGKILL the parent and its
    command (here the shell exec'd into sleep) goes too."""
    code = ("from upkeeper.models import Host\n"
            "from upkeeper.transport.local import LocalTransport\n"
            "print('go', flush=True)\n"
            "LocalTransport(Host(name='localhost')).run('exec sleep 3003.25')\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None and parent.stdout.readline() == b"go\n"
        until(lambda: processes_with("sleep 3003.25"), 30, "the command")
        parent.kill()
        parent.wait()
        until(lambda: not processes_with("sleep 3003.25"), 10, "the command to die")
    finally:
        parent.kill()
        parent.wait()
        for pid in processes_with("sleep 3003.25"):
            os.kill(pid, signal.SIGKILL)
