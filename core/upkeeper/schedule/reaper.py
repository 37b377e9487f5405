"""Ending what a killed daemon left running.

The daemon's direct children get the parent-death signal, but ``sh -c 'a; b'`` forks,
and its children live on when the shell dies. So while ``serve`` runs, every command's
process group is recorded in the state dir (``serve-children.json``, through
:mod:`upkeeper.transport.children`). On start, a group
recorded by a predecessor that is still there is killed, but only when it is provably
the same group: same boot, and either its leader has the recorded start time or (leader
gone) its members are in the leader's session, belong to our user and started no
earlier than the leader did. A sentinel process (:func:`start_sentinel`) does the same
the moment the daemon dies, however it dies. Linux only; elsewhere nothing is recorded
or killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from upkeeper.schedule.instance import ProcessIdentity, all_pids, boot_id, proc_stat

log = logging.getLogger("upkeeper.serve")


class ChildRecord:
    """The live process groups of this daemon's commands, kept in a small JSON file
    replaced atomically on every change."""

    def __init__(self, path: Path, owner: ProcessIdentity) -> None:
        self.path, self.owner = path, owner
        self._groups: dict[int, int] = {}
        self._lock = threading.Lock()

    def started(self, pgid: int) -> None:
        st = proc_stat(pgid)
        if st is None:
            return  # already gone (or no /proc): nothing could be left behind
        with self._lock:
            self._groups[pgid] = st.start
            self._write()

    def reset(self) -> None:
        """Start this daemon's record (after :func:`reap` ended the predecessor's)."""
        with self._lock:
            self._groups.clear()
            self._write()

    def ended(self, pgid: int) -> None:
        with self._lock:
            if self._groups.pop(pgid, None) is not None:
                self._write()

    def _write(self) -> None:
        data = {"daemon": self.owner.to_dict(), "boot": boot_id(),
                "groups": {str(k): v for k, v in self._groups.items()}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


def _members(pgid: int, leader_start: int) -> list[int]:
    """Processes that are provably still part of the recorded group."""
    uid = os.geteuid() if hasattr(os, "geteuid") else -1
    leader = proc_stat(pgid)
    if leader is not None and leader.start != leader_start:
        return []  # the pid now names another process: not ours
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if (st is not None and st.pgid == pgid and st.sid == pgid and st.start >= leader_start
                and st.uid == uid):
            out.append(pid)
    return out


def leftovers(path: Path) -> dict[int, list[int]]:
    """Recorded groups still alive: pgid -> member pids."""
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    if not isinstance(data, dict) or data.get("boot") != boot_id() or data.get("boot") is None:
        return {}  # rebooted since: every recorded process is gone
    owner = ProcessIdentity.from_dict(data.get("daemon"))
    if owner is not None and owner.pid != os.getpid() and owner.alive():
        raise RuntimeError(f"the daemon that recorded {path} (pid {owner.pid}) still runs")
    found = {}
    groups = data.get("groups")
    for key, start in (groups.items() if isinstance(groups, dict) else ()):
        try:
            pgid, leader_start = int(key), int(start)
        except (TypeError, ValueError):
            continue
        if pgid > 1 and (members := _members(pgid, leader_start)):
            found[pgid] = members
    return found


def reap(path: Path, wait: float = 5.0) -> dict[int, list[int]]:
    """SIGKILL the groups a dead predecessor left (see module doc); returns them."""
    found = leftovers(path)
    for pgid, members in found.items():
        what = _cmdline(members[0])
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        except PermissionError:  # e.g. a member ran setuid: kill what we may
            for pid in members:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        log.warning("killed process group %d (%d process(es)) left running by a daemon that"
                    " was killed: %s", pgid, len(members), what)
    deadline = time.monotonic() + wait
    while found and time.monotonic() < deadline:
        if not any(proc_stat(p) is not None for ms in found.values() for p in ms):
            break
        time.sleep(0.05)
    return found


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:200] or "?"


def start_sentinel(path: Path) -> subprocess.Popen[bytes] | None:
    """A small process that outlives a killed daemon just long enough to end its
    commands: it waits for the daemon's end of a pipe to close (the kernel closes it
    however the daemon dies), then reaps. Linux only."""
    if proc_stat(os.getpid()) is None:
        return None
    r, w = os.pipe()  # not inherited by commands: only the daemon holds the write end
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "upkeeper.schedule.reaper", str(path), str(os.getpid())],
            stdin=r, stdout=subprocess.DEVNULL, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "LANG")})
    except OSError as exc:
        os.close(w)
        log.warning("no sentinel for commands of a killed daemon: %s", exc)
        return None
    finally:
        os.close(r)
    _sentinel_pipes.append(w)  # held open for the daemon's lifetime
    return proc


_sentinel_pipes: list[int] = []


def _sentinel(path: Path, daemon_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    deadline = time.monotonic() + 10
    while proc_stat(daemon_pid) is not None and time.monotonic() < deadline:
        time.sleep(0.02)  # the pipe closes a moment before the process is gone
    with contextlib.suppress(RuntimeError):  # the daemon still runs: nothing to do
        reap(path)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="upkeeper sentinel: %(message)s")
    _sentinel(Path(sys.argv[1]), int(sys.argv[2]))
