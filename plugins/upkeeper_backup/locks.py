"""Who holds a repository lock and for how long, from restic's message or borg's roster."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta

from upkeeper.measures import format_duration

_RESTIC_HOLDER = re.compile(
    r"already locked (?P<excl>exclusively )?by PID (?P<pid>\d+) on (?P<host>\S+)"
    r"(?: by (?P<user>[^\n(]+?))?\s*(?:\(|$)", re.MULTILINE)
_RESTIC_AGE = re.compile(r"lock was created at [^\n(]*\((?P<age>[^)]*?) ago\)")
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|h|m|s)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
#: restic renews a live lock every 5 minutes and treats one older than 30 as stale.
RESTIC_STALE_AFTER = timedelta(minutes=30)
#: borg never renews its lock; a lock held this long is worth a look.
BORG_SUSPECT_AFTER = timedelta(days=1)


@dataclass
class LockInfo:
    """A repository lock as far as the tool tells: any field may be unknown."""

    host: str = ""
    pid: int | None = None
    user: str = ""
    exclusive: bool | None = None
    age: timedelta | None = None


def parse_go_duration(text: str) -> timedelta | None:
    """Go's ``time.Duration`` text (``3h12m5.5s``, ``1.53s``, ``250ms``)."""
    text = text.strip()
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
        return None
    return timedelta(seconds=sum(float(n) * _GO_UNITS[u] for n, u in parts))


def parse_restic_lock(stderr: str) -> LockInfo | None:
    """The holder and age from restic's "repository is already locked" message."""
    holder = _RESTIC_HOLDER.search(stderr)
    if holder is None:
        return None
    age = _RESTIC_AGE.search(stderr)
    return LockInfo(host=holder.group("host"), pid=int(holder.group("pid")),
                    user=(holder.group("user") or "").strip(),
                    exclusive=bool(holder.group("excl")),
                    age=parse_go_duration(age.group("age")) if age else None)


def parse_borg_roster(roster: str, locked_at: float | None, now: float) -> LockInfo | None:
    """borg 1.x ``lock.roster`` (``{"exclusive": [["host@node", pid, thread]]}``) and the
    epoch seconds the ``lock.exclusive`` directory was made."""
    try:
        data = json.loads(roster)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    age = timedelta(seconds=now - locked_at) if locked_at is not None else None
    for kind in ("exclusive", "shared"):
        holders = data.get(kind)
        if isinstance(holders, list) and holders and isinstance(holders[0], list):
            entry = holders[0]
            host = str(entry[0]).rsplit("@", 1)[0] if entry else ""
            pid = entry[1] if len(entry) > 1 and isinstance(entry[1], int) else None
            return LockInfo(host=host, pid=pid, exclusive=kind == "exclusive", age=age)
    return None


def describe_lock(tool: str, info: LockInfo | None) -> str:
    """``repository is locked for 3 h 12 min by host X pid N``, with the tool's unlock
    command only where the lock looks stale (never for a lock that is still renewed)."""
    if info is None:
        return "repository is locked (a backup, prune or check running?)"
    text = "repository is locked"
    if info.age is not None:
        text += f" for {format_duration(max(info.age, timedelta(0)))}"
    who = [f"host {info.host}"] if info.host else []
    who += [f"pid {info.pid}"] if info.pid is not None else []
    if who:
        text += f" by {' '.join(who)}"
    extra = [f"user {info.user}"] if info.user else []
    extra += ["exclusive"] if info.exclusive else []
    if extra:
        text += f" ({', '.join(extra)})"
    where = f" on {info.host}" if info.host else ""
    if tool == "restic" and info.age is not None and info.age > RESTIC_STALE_AFTER:
        text += (f"; stale (restic renews live locks every 5 min): if no restic runs"
                 f"{where} any more, `restic unlock` removes it")
    elif tool == "borg" and info.age is not None and info.age > BORG_SUSPECT_AFTER:
        text += (f"; held for over a day: if no borg runs{where} any more, "
                 "`borg break-lock` removes it")
    return text
