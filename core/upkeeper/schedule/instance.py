"""One daemon per state dir, and telling a live daemon from a dead one.

A process is named by pid, host, boot and its start time from ``/proc/PID/stat``, so a
pid reused after a crash is not mistaken for the daemon. The lock is ``flock`` on the
state dir itself: deleting ``serve.lock`` (which only tells people who holds it) does
not let a second daemon in.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` we use."""

    pid: int
    state: str  # R, S, D, Z (zombie: dead, not yet reaped) ...
    ppid: int
    pgid: int
    sid: int
    start: int  # clock ticks after boot
    uid: int


def proc_stat(pid: int) -> ProcStat | None:
    """None when the process does not exist or is a zombie (or this is not Linux)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError):
        return None
    # The command name is in parentheses and may itself contain ") ".
    try:
        fields = raw.rsplit(")", 1)[1].split()
        st = ProcStat(pid=pid, state=fields[0], ppid=int(fields[1]), pgid=int(fields[2]),
                        sid=int(fields[3]), start=int(fields[19]), uid=uid)
    except (IndexError, ValueError):
        return None
    return None if st.state == "Z" else st


def all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a daemon is: enough to check later whether that very process still runs."""

    pid: int
    host: str
    start: int | None = None
    boot: str | None = None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        st = proc_stat(pid)
        return cls(pid=pid, host=socket.gethostname(), start=st.start if st else None,
                   boot=boot_id())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> ProcessIdentity | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(pid=int(data["pid"]), host=str(data["host"]),
                       start=None if data.get("start") is None else int(data["start"]),
                       boot=data.get("boot"))
        except (KeyError, TypeError, ValueError):
            return None

    def alive(self) -> bool | None:
        """True: that process runs; False: it does not; None: cannot tell from here
        (another host, or no ``/proc``)."""
        if self.host != socket.gethostname() or self.start is None:
            return None
        here = boot_id()
        if self.boot is not None and here is not None and here != self.boot:
            return False  # rebooted since
        st = proc_stat(self.pid)
        if st is None:
            return False if Path("/proc/self/stat").exists() else None
        return st.start == self.start


class InstanceLock:
    """``flock`` on the state dir; ``serve.lock`` beside it names the holder."""

    def __init__(self, state_dir: Path, info_file: Path) -> None:
        self.state_dir, self.info_file = state_dir, info_file
        self._fd: int | None = None

    def acquire(self, me: ProcessIdentity) -> None:
        """:raises RuntimeError: another live daemon holds the state dir."""
        try:
            import fcntl
        except ImportError:  # Windows: one service instance is the service manager's job
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(f"another upkeeper serve ({self.holder()}) holds the state"
                               f" dir {self.state_dir}") from None
        self._fd = fd
        try:
            tmp = self.info_file.with_name(self.info_file.name + ".tmp")
            tmp.write_text(json.dumps(me.to_dict()) + "\n")
            os.replace(tmp, self.info_file)
        except OSError:
            pass  # only informative; the flock is what keeps a second daemon out

    def holder(self) -> str:
        try:
            data = json.loads(self.info_file.read_text())
        except FileNotFoundError:
            return f"pid unknown: {self.info_file.name} was removed"
        except (OSError, ValueError):
            return "holder unknown"
        who = ProcessIdentity.from_dict(data)
        return f"pid {who.pid} on {who.host}" if who else "holder unknown"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
