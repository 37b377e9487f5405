"""The kill/close contract of the local transport and its output reading."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from upkeeper import TransportError
from upkeeper.models import Host
from upkeeper.transport import children
from upkeeper.transport.local import LocalTransport


def transport() -> LocalTransport:
    return LocalTransport(Host("localhost", vars={"ansible_connection": "local"}))


def wait_for(cond, deadline: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        time.sleep(0.02)


def test_close_under_a_running_command_raises_transport_error(tmp_path: Path) -> None:
    t = transport()
    started = tmp_path / "started"
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["result"] = t.run(f"touch {started}; echo partial; sleep 60")
        except TransportError as exc:
            box["error"] = exc

    th = threading.Thread(target=call)
    th.start()
    wait_for(started.exists)
    t.close()
    th.join(20)
    assert not th.is_alive()
    assert "result" not in box, f"a killed command returned {box.get('result')!r}"
    assert "was closed" in str(box["error"])
    # the transport still works after close (the runner may reuse it for facts)
    assert t.run("echo again").stdout == "again\n"


def test_background_child_holding_stdout_does_not_stall_or_lose_output(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    t = transport()
    t0 = time.monotonic()
    r = t.run(f"echo before; nohup sleep 60 >/dev/stdout 2>&1 & echo $! > {pidfile}; "
              "echo after; exit 4", timeout=30)
    elapsed = time.monotonic() - t0
    try:
        assert r.stdout.splitlines()[:1] == ["before"] and "after" in r.stdout
        assert r.exit_code == 4 and not r.timed_out
        # the background child still runs: we did not wait for it (it would take 60 s)
        pid = int(pidfile.read_text())
        assert os.path.exists(f"/proc/{pid}")
        assert elapsed < 30, f"took {elapsed:.1f}s"  # the run's timeout; the child sleeps 60 s
    finally:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), 9)


def test_command_closing_its_output_still_honours_the_timeout() -> None:
    r = transport().run("exec >&- 2>&-; sleep 60", timeout=0.5)
    assert r.timed_out


@pytest.mark.parametrize("n", [0, 1, 65536, 300000])
def test_output_sizes_are_read_exactly(n: int) -> None:
    r = transport().run(f"head -c {n} /dev/zero | tr '\\0' y; printf E >&2")
    assert r.stdout == "y" * n and r.stderr == "E"


def test_close_landing_while_the_command_is_being_started_still_kills_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The race behind a flaky CI run: the command's process exists (and may already
    have done its first steps) but ``run`` has not registered it yet when ``close`` walks
    the running commands. The hook holds ``run`` exactly there until ``close`` returned."""
    t = transport()
    spawned, closed = threading.Event(), threading.Event()
    pids: list[int] = []
    real_started = children.started

    def held_started(pgid: int) -> None:
        pids.append(pgid)
        spawned.set()
        assert closed.wait(20)
        real_started(pgid)

    monkeypatch.setattr(children, "started", held_started)
    box: dict[str, object] = {}

    def call() -> None:
        try:
            box["result"] = t.run("sleep 60")
        except TransportError as exc:
            box["error"] = exc

    th = threading.Thread(target=call)
    th.start()
    try:
        assert spawned.wait(20)
        t.close()
        closed.set()
        th.join(20)
        assert not th.is_alive(), "close() missed a command that was being started"
        assert "was closed" in str(box.get("error")), box
        assert not os.path.exists(f"/proc/{pids[0]}") or _is_zombie(pids[0])
    finally:
        closed.set()
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, 9)
        th.join(20)
    monkeypatch.setattr(children, "started", real_started)
    # a run started after the close works as before
    assert t.run("echo again").stdout == "again\n"


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
