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
_UNKNOWN_RANK = Status.UNKNOWN.severity
_RANK = {s: s.severity for s in Status}
_IDS_PER_QUERY = 500


def _status_counts(statuses: Iterable[Status]) -> dict[str, int]:
    counts = Counter(s.value for s in statuses)
    return {s.value: counts.get(s.value, 0) for s in Status}


@dataclass(slots=True, unsafe_hash=True)
class CheckState:
    """The latest result of one check (one ``name``) on one host. Treat as read-only:
    hashable like the other state classes, but not frozen, because thousands are built
    per state query and a frozen dataclass's ``__init__`` costs several times more."""

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

    #: The status that counts now: a stale result is at least UNKNOWN.
    effective: Status = field(init=False)

    def __post_init__(self) -> None:
        self.effective = (Status.UNKNOWN if self.stale and self.status.severity
                          < _UNKNOWN_RANK else self.status)

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


def schedule_periods(history: History,
                     playbooks: Iterable[str] | None = None) -> dict[str, timedelta]:
    """Playbook -> the schedule period the scheduler recorded in its latest scheduled run
    (of ``playbooks`` only, if given: one indexed lookup each)."""
    if playbooks is None:
        playbooks = [r[0] for r in history.query("SELECT DISTINCT playbook FROM runs")]
    out: dict[str, timedelta] = {}
    for book in playbooks:
        rows = history.query(
            "SELECT json_extract(meta, '$.schedule_period') FROM runs WHERE playbook=?"
            " AND json_valid(meta) AND json_extract(meta, '$.schedule_period') IS NOT NULL"
            " ORDER BY started DESC LIMIT 1", (book,))
        seconds = _seconds(rows[0][0]) if rows else None
        if seconds:
            out[book] = timedelta(seconds=seconds)
    return out


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds < float("inf") else None


STATE_SQL = ("SELECT host, check_name, name, result_id, run_id, status, summary, ts"
             " FROM current")


@dataclass(frozen=True)
class _RunInfo:
    playbook: str
    started: float
    period: float | None
    unreachable: Mapping[str, str]


def _runs(history: History, run_ids: set[str]) -> dict[str, _RunInfo]:
    """Playbook, recorded schedule period and unreachable hosts of the runs that hold
    current results (a handful: one per playbook run that last touched a check)."""
    out: dict[str, _RunInfo] = {}
    ids = sorted(run_ids)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[start:start + _IDS_PER_QUERY]
        marks = ",".join("?" * len(chunk))
        for r in history.query(
                "SELECT id, playbook, started, CASE WHEN json_valid(meta) THEN"
                " json_extract(meta, '$.schedule_period') END AS period,"
                " CASE WHEN json_valid(meta) THEN json_extract(meta, '$.unreachable') END"
                f" AS down FROM runs WHERE id IN ({marks})", tuple(chunk)):
            try:
                down = json.loads(r["down"]) if r["down"] else None
            except ValueError:
                down = None
            out[r["id"]] = _RunInfo(
                r["playbook"], r["started"], _seconds(r["period"]),
                {str(k): str(v) for k, v in down.items()} if isinstance(down, dict) else {})
    return out


def _periods(history: History, runs: Mapping[str, _RunInfo],
             given: Mapping[str, timedelta] | None) -> dict[str, timedelta]:
    """Playbook -> period: the caller's, else the newest of the current runs that
    recorded one, else the playbook's latest scheduled run."""
    periods: dict[str, tuple[float, timedelta]] = {}
    for info in runs.values():
        if info.period and info.started >= periods.get(info.playbook, (float("-inf"),))[0]:
            periods[info.playbook] = (info.started, timedelta(seconds=info.period))
    out = {book: period for book, (_, period) in periods.items()}
    out.update(given or {})
    missing = {info.playbook for info in runs.values()} - set(out)
    out.update(schedule_periods(history, sorted(missing)))
    return out


def _select(history: History, hosts: list[str] | None) -> list[Any]:
    if hosts is None:
        return history.query(STATE_SQL)
    rows: list[Any] = []
    for start in range(0, len(hosts), _IDS_PER_QUERY):
        chunk = hosts[start:start + _IDS_PER_QUERY]
        rows += history.query(STATE_SQL + f" WHERE host IN ({','.join('?' * len(chunk))})",
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
    elif client is not None and client != NO_CLIENT:  # hosts without one are not listed
        wanted = sorted(h for h, c in clients.items() if c == client)
    rows = [r for r in _select(history, wanted)
            if client is None or clients.get(r["host"], NO_CLIENT) == client]
    runs = _runs(history, {r["run_id"] for r in rows})
    periods = _periods(history, runs, schedules)
    by_host: dict[str, list[CheckState]] = {}
    latest_run: dict[str, tuple[float, str]] = {}
    allowed_of = {run_id: (info.playbook, periods[info.playbook] * STALE_FACTOR
                           if info.playbook in periods else unscheduled_max_age)
                  for run_id, info in runs.items()}
    zero = timedelta(0)
    for name, check, label, result_id, run_id, status, summary, stamp in rows:
        ts = datetime.fromtimestamp(stamp, tz=UTC)
        playbook, allowed = allowed_of.get(run_id, ("", unscheduled_max_age))
        age = max(now - ts, zero)
        by_host.setdefault(name, []).append(CheckState(
            name, check, label, _status(status), summary, ts, age, allowed, age > allowed,
            playbook, run_id, result_id))
        if stamp >= latest_run.get(name, (float("-inf"), ""))[0]:
            latest_run[name] = (stamp, run_id)
    grouped: dict[str, list[HostState]] = {}
    for name, checks in by_host.items():
        last = runs.get(latest_run[name][1])
        reason = last.unreachable.get(name) if last else None
        checks.sort(key=lambda c: (-_RANK[c.effective], c.check, c.name))
        state = HostState(name, clients.get(name, NO_CLIENT), tuple(checks),
                          down=reason is not None, down_reason=reason)
        grouped.setdefault(state.client, []).append(state)
    out = []
    for cname, hosts in grouped.items():
        hosts.sort(key=lambda h: (not h.down, -h.status.severity, h.host))
        out.append(ClientState(cname, tuple(hosts)))
    out.sort(key=lambda c: (-c.status.severity, c.name == NO_CLIENT, c.name))
    return FleetState(now, tuple(out))


_STATUSES = {s.value: s for s in Status}


def _status(value: str) -> Status:
    return _STATUSES.get(value, Status.UNKNOWN)
