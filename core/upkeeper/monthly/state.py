"""The current state of the fleet: for every (host, check) the latest result from any
playbook, its age, whether it is stale, and the worst status per host and per client.

Read from the ``current`` table the history keeps on every insert
(:mod:`upkeeper.store.current`), so it costs one indexed read, not a scan of all results.

Staleness: a result is stale when it is older than ``STALE_FACTOR`` x its playbook's
schedule period (so one missed slot is noticed within half a period, jitter and run time
included). The period comes from ``schedules`` when the caller knows the live specs, else
from the ``schedule_period`` the scheduler records in each scheduled run's meta (the
latest such run of that playbook). A playbook never run by the scheduler has no period:
its results are stale after ``unscheduled_max_age`` (7 days by default).

A stale result counts as at least UNKNOWN in the worst status and exit code (we no longer
know the state), as monitoring freshness checks do; its own status is kept.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import Status

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["NO_CLIENT", "STALE_FACTOR", "UNSCHEDULED_MAX_AGE", "CheckState", "ClientState",
           "FleetState", "HostState", "current_state", "host_clients", "schedule_periods"]

UTC = timezone.utc
NO_CLIENT = "(no client)"
STALE_FACTOR = 1.5
UNSCHEDULED_MAX_AGE = timedelta(days=7)
#: Statuses that are not a problem.
_FINE = (Status.OK, Status.SKIPPED)
_IDS_PER_QUERY = 500


def _status_counts(statuses: Iterable[Status]) -> dict[str, int]:
    counts = Counter(s.value for s in statuses)
    return {s.value: counts.get(s.value, 0) for s in Status}


@dataclass(frozen=True)
class CheckState:
    """The latest result of one check (one ``name``) on one host."""

    host: str
    check: str
    name: str
    status: Status
    summary: str
    ts: datetime
    age: timedelta
    allowed_age: timedelta
    stale: bool
    playbook: str
    run_id: str
    result_id: int

    @cached_property
    def effective(self) -> Status:
        """The status that counts now: a stale result is at least UNKNOWN."""
        return Status.worst((self.status, Status.UNKNOWN)) if self.stale else self.status

    @property
    def problem(self) -> bool:
        return self.effective not in _FINE

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "check": self.check, "name": self.name,
                "status": self.status.value, "effective": self.effective.value,
                "summary": self.summary, "ts": self.ts.isoformat(),
                "age_seconds": round(self.age.total_seconds()),
                "allowed_age_seconds": round(self.allowed_age.total_seconds()),
                "stale": self.stale, "playbook": self.playbook, "run_id": self.run_id,
                "result_id": self.result_id}


@dataclass(frozen=True)
class HostState:
    """One host: its checks' latest results; ``down`` when its latest run could not
    reach it (then ``down_reason`` says why and the checks say only that)."""

    host: str
    client: str
    checks: tuple[CheckState, ...]
    down: bool = False
    down_reason: str | None = None

    @cached_property
    def status(self) -> Status:
        return Status.worst(c.effective for c in self.checks)

    @property
    def last_seen(self) -> datetime:
        return max(c.ts for c in self.checks)

    @property
    def counts(self) -> dict[str, int]:
        return _status_counts(c.effective for c in self.checks)

    @property
    def problems(self) -> tuple[CheckState, ...]:
        return tuple(c for c in self.checks if c.problem)

    @property
    def stale(self) -> int:
        return sum(c.stale for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "client": self.client, "status": self.status.value,
                "down": self.down, "down_reason": self.down_reason,
                "last_seen": self.last_seen.isoformat(), "counts": self.counts,
                "stale": self.stale, "checks": [c.to_dict() for c in self.checks]}


@dataclass(frozen=True)
class ClientState:
    name: str
    hosts: tuple[HostState, ...]

    @cached_property
    def status(self) -> Status:
        return Status.worst(h.status for h in self.hosts)

    @property
    def counts(self) -> dict[str, int]:
        return _status_counts(c.effective for h in self.hosts for c in h.checks)

    @property
    def down(self) -> tuple[HostState, ...]:
        return tuple(h for h in self.hosts if h.down)

    def to_dict(self) -> dict[str, Any]:
        return {"client": self.name, "status": self.status.value, "counts": self.counts,
                "hosts_down": len(self.down), "hosts": [h.to_dict() for h in self.hosts]}


@dataclass(frozen=True)
class FleetState:
    """Every client, worst first (then by name); hosts and checks likewise sorted."""

    now: datetime
    clients: tuple[ClientState, ...] = field(default_factory=tuple)

    @property
    def hosts(self) -> tuple[HostState, ...]:
        return tuple(h for c in self.clients for h in c.hosts)

    @property
    def checks(self) -> tuple[CheckState, ...]:
        return tuple(c for h in self.hosts for c in h.checks)

    @property
    def status(self) -> Status:
        return Status.worst(c.status for c in self.clients)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    @property
    def counts(self) -> dict[str, int]:
        return _status_counts(c.effective for c in self.checks)

    def client(self, name: str) -> ClientState | None:
        return next((c for c in self.clients if c.name == name), None)

    def host(self, name: str) -> HostState | None:
        return next((h for h in self.hosts if h.host == name), None)

    def problems_only(self) -> FleetState:
        """Only hosts with a problem (down, or a check not OK/SKIPPED, or stale), with
        only their problem checks; clients without any are left out."""
        clients = []
        for c in self.clients:
            hosts = tuple(HostState(h.host, h.client, h.checks if h.down else h.problems,
                                    h.down, h.down_reason)
                          for h in c.hosts if h.down or h.problems)
            if hosts:
                clients.append(ClientState(c.name, hosts))
        return FleetState(self.now, tuple(clients))

    def to_dict(self) -> dict[str, Any]:
        return {"now": self.now.isoformat(), "status": self.status.value,
                "exit_code": self.exit_code, "counts": self.counts,
                "clients": [c.to_dict() for c in self.clients]}


def host_clients(history: History) -> dict[str, str]:
    """Host -> client, as remembered after every run (see
    :mod:`upkeeper.after_run.clients`)."""
    rows = history.query("SELECT host, value FROM state WHERE check_name=? AND key=?",
                         CLIENT_STATE)
    out: dict[str, str] = {}
    for r in rows:
        try:
            value = json.loads(r["value"])
        except ValueError:
            continue
        if value:
            out[r["host"]] = str(value)
    return out


def schedule_periods(history: History) -> dict[str, timedelta]:
    """Playbook -> schedule period recorded by the scheduler in its latest scheduled run."""
    rows = history.query(
        "SELECT playbook, json_extract(meta, '$.schedule_period') AS period, MAX(started)"
        " FROM runs WHERE json_valid(meta) AND"
        " json_extract(meta, '$.schedule_period') IS NOT NULL GROUP BY playbook")
    out: dict[str, timedelta] = {}
    for r in rows:
        try:
            seconds = float(r["period"])
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            out[r["playbook"]] = timedelta(seconds=seconds)
    return out


STATE_SQL = ("SELECT c.host, c.check_name, c.name, c.result_id, c.run_id, c.status,"
             " c.summary, c.ts, r.playbook FROM current c LEFT JOIN runs r ON r.id = c.run_id")


def _unreachable(history: History, run_ids: set[str]) -> dict[str, dict[str, str]]:
    """Run id -> {host: reason} for the runs that could not reach some host."""
    out: dict[str, dict[str, str]] = {}
    ids = sorted(run_ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        for r in history.query(
                "SELECT id, json_extract(meta, '$.unreachable') AS down FROM runs"
                f" WHERE id IN ({marks}) AND json_valid(meta)", tuple(chunk)):
            try:
                down = json.loads(r["down"]) if r["down"] else None
            except ValueError:
                down = None
            if isinstance(down, dict):
                out[r["id"]] = {str(k): str(v) for k, v in down.items()}
    return out


def _select(history: History, hosts: list[str] | None) -> list[Any]:
    if hosts is None:
        return history.query(STATE_SQL)
    rows: list[Any] = []
    for start in range(0, len(hosts), _IDS_PER_QUERY):
        chunk = hosts[start:start + _IDS_PER_QUERY]
        rows += history.query(STATE_SQL + f" WHERE c.host IN ({','.join('?' * len(chunk))})",
                              tuple(chunk))
    return rows


def current_state(history: History, *, client: str | None = None, host: str | None = None,
                  now: datetime | None = None,
                  schedules: Mapping[str, timedelta] | None = None,
                  unscheduled_max_age: timedelta = UNSCHEDULED_MAX_AGE) -> FleetState:
    """The fleet's current state, optionally of one client and/or one host.

    :param schedules: playbook name -> schedule period, when the caller knows the live
        specs (they win over what runs recorded).
    :param now: the time ages are measured from (default: now, UTC).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    clients = host_clients(history)
    wanted: list[str] | None = None
    if host is not None:
        wanted = [host]
    elif client is not None:
        wanted = sorted(h for h, c in clients.items() if c == client)
    periods = schedule_periods(history)
    periods.update(schedules or {})
    by_host: dict[str, list[CheckState]] = {}
    latest_run: dict[str, tuple[float, str]] = {}
    for r in _select(history, wanted):
        name = r["host"]
        if client is not None and clients.get(name, NO_CLIENT) != client:
            continue
        ts = datetime.fromtimestamp(r["ts"], tz=UTC)
        playbook = r["playbook"] or ""
        period = periods.get(playbook)
        allowed = period * STALE_FACTOR if period else unscheduled_max_age
        age = max(now - ts, timedelta(0))
        by_host.setdefault(name, []).append(CheckState(
            host=name, check=r["check_name"], name=r["name"], status=_status(r["status"]),
            summary=r["summary"], ts=ts, age=age, allowed_age=allowed, stale=age > allowed,
            playbook=playbook, run_id=r["run_id"], result_id=r["result_id"]))
        if r["ts"] >= latest_run.get(name, (float("-inf"), ""))[0]:
            latest_run[name] = (r["ts"], r["run_id"])
    down = _unreachable(history, {rid for _, rid in latest_run.values()})
    grouped: dict[str, list[HostState]] = {}
    for name, checks in by_host.items():
        reason = down.get(latest_run[name][1], {}).get(name)
        checks.sort(key=lambda c: (-c.effective.severity, c.check, c.name))
        state = HostState(name, clients.get(name, NO_CLIENT), tuple(checks),
                          down=reason is not None, down_reason=reason)
        grouped.setdefault(state.client, []).append(state)
    out = []
    for cname, hosts in grouped.items():
        hosts.sort(key=lambda h: (not h.down, -h.status.severity, h.host))
        out.append(ClientState(cname, tuple(hosts)))
    out.sort(key=lambda c: (-c.status.severity, c.name))
    return FleetState(now, tuple(out))


_STATUSES = {s.value: s for s in Status}


def _status(value: str) -> Status:
    return _STATUSES.get(value, Status.UNKNOWN)
