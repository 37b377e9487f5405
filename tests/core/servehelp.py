"""A real ``upkeeper serve`` process for tests: its own state dir, log, and helpers to
wait for slot states (polling with a deadline, never a fixed sleep)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from upkeeper.store.history import History

FAST = """\
name: {name}
hosts: all
schedule:
  every: "{every}"
checks:
  - name: nap
    check: system.command
    params:
      command: "{command}"
"""


def serve_argv(*args: str) -> list[str]:
    from upkeeper.cli import main as cli

    if "serve" in getattr(cli.main, "commands", {}):
        return [sys.executable, "-m", "upkeeper", "serve", *args]
    return [sys.executable, "-m", "upkeeper.cli.serve", "serve", *args]


class Serve:
    """A running ``serve`` process with its own state dir."""

    def __init__(self, playbooks: Path, state: Path, *extra: str) -> None:
        self.state, self.log = state, state / "serve.log"
        state.mkdir(exist_ok=True)
        self.offset = self.log.stat().st_size if self.log.exists() else 0
        self.logf = open(self.log, "ab")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            serve_argv("--playbooks", str(playbooks), "--state-dir", str(state),
                       "--heartbeat", "1s", *extra),
            stdout=self.logf, stderr=self.logf)

    def slots(self) -> list[dict[str, Any]]:
        db = self.state / "history.sqlite3"
        if not db.exists():
            return []
        h = History(db)
        try:
            return [dict(r) for r in h.query("SELECT * FROM schedule_slots ORDER BY due")]
        except Exception:  # table not created yet
            return []
        finally:
            h.close()

    def until(self, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.slots()):
                return
            assert self.proc.poll() is None, self.text()
            time.sleep(0.1)
        raise AssertionError(f"timed out; log:\n{self.text()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.logf.close()

    def text(self) -> str:
        """This process's part of the log (several may share the state dir)."""
        with open(self.log, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def health(self) -> dict[str, Any]:
        """The health file's content ({} until the first heartbeat)."""
        try:
            data: dict[str, Any] = json.loads((self.state / "serve-health.json").read_text())
        except (OSError, ValueError):
            return {}
        return data

    def beats_after(self, mark: str, timeout: float = 60) -> str:
        """Wait for a heartbeat later than ``mark`` (ISO time); returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            beat = self.health().get("heartbeat", "")
            if beat > mark:
                return str(beat)
            assert self.proc.poll() is None, self.text()
            time.sleep(0.05)
        raise AssertionError(f"no heartbeat after {mark}; log:\n{self.text()}")


def until(pred: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something true, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def processes_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError, UnicodeDecodeError):
            continue
        if marker in cmd and state != "Z":
            out.append(int(entry.name))
    return out


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    procs: list[Serve] = []

    def start(playbooks: Path, *extra: str, state: str = "state") -> Serve:
        s = Serve(playbooks, tmp_path / state, *extra)
        procs.append(s)
        return s

    yield start
    for s in procs:
        if s.proc.poll() is None:
            s.proc.kill()
            s.wait()


def write_playbook(directory: Path, name: str, every: str = "1 seconds",
                   command: str = "echo ok") -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / f"{name}.yml"
    path.write_text(FAST.format(name=name, every=every, command=command))
    return path


def runs_by_slot(state: Path) -> dict[tuple[str, str], int]:
    h = History(state / "history.sqlite3")
    out: dict[tuple[str, str], int] = {}
    for r in h.query("SELECT meta FROM runs"):
        meta = json.loads(r["meta"])
        key = (meta["job"], meta["slot_due"])
        out[key] = out.get(key, 0) + 1
    h.close()
    return out


