"""The period (monthly) client report's content, from every result in the period.

:func:`build_client_report` gathers availability and incidents per check
(:mod:`upkeeper.monthly.timeline`), patches, backups and disk forecasts
(:mod:`upkeeper.monthly.facts`), the fixes and documentation changes of the period
(through the ``fixes`` and ``docs`` seams: remediation and as-built documents plug in
there), the current open problems and the next maintenance windows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from upkeeper.engine.windows import HostWindows
from upkeeper.models import Status
from upkeeper.monthly.facts import (
    BackupFacts,
    DiskForecast,
    PatchFacts,
    backup_facts,
    disk_forecasts,
    patch_facts,
)
from upkeeper.monthly.period import Period
from upkeeper.monthly.state import (
    STALE_FACTOR,
    UNSCHEDULED_MAX_AGE,
    ClientState,
    current_state,
    host_clients,
    schedule_periods,
)
from upkeeper.monthly.timeline import Availability, Incident, Point, availability, incidents

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["LOOKBACK", "CheckLine", "ClientReport", "DocChange", "DocsSource", "FixDone",
           "FixesSource", "MonthlyReportError", "PlannedWindow", "build_client_report",
           "client_hosts", "collapse_down"]

UTC = timezone.utc
#: How far before the period results are read: the status carried into it, and the true
#: start of an incident that began earlier (older starts show as "before" this).
LOOKBACK = timedelta(days=35)
_IDS_PER_QUERY = 500


class MonthlyReportError(ValueError):
    """The report cannot be built (unknown client, nothing in the period)."""


@dataclass(frozen=True)
class FixDone:
    """A fix applied in the period (from remediation's audit trail)."""

    host: str
    check: str
    when: datetime
    what: str
    outcome: str
    #: The check that failed passed again (False: an attempt that did not work).
    fixed: bool = True


@dataclass(frozen=True)
class DocChange:
    """A change in a host's as-built documentation in the period."""

    host: str
    when: datetime
    what: str


#: Seams: (hosts, start, end) -> records of the period; None when the feature is absent.
FixesSource = Callable[[Sequence[str], datetime, datetime], Sequence[FixDone]]
DocsSource = Callable[[Sequence[str], datetime, datetime], Sequence[DocChange]]


@dataclass(frozen=True)
class PlannedWindow:
    start: datetime
    end: datetime
    label: str
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class CheckLine:
    host: str
    check: str
    name: str
    availability: Availability
    results: int
    worst: Status
    incidents: int


@dataclass
class ClientReport:
    client: str
    period: Period
    generated: datetime
    until: datetime
    hosts: list[str]
    checks: list[CheckLine]
    incidents: list[Incident]
    patches: list[PatchFacts]
    backups: list[BackupFacts]
    disks: list[DiskForecast]
    results: int
    current: ClientState | None = None
    fixes: list[FixDone] | None = None
    doc_changes: list[DocChange] | None = None
    planned: list[PlannedWindow] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def availability(self) -> float | None:
        """OK time over checked time across every check of the client."""
        checked = sum((c.availability.checked for c in self.checks), timedelta(0))
        ok = sum((c.availability.ok for c in self.checks), timedelta(0))
        return None if checked <= timedelta(0) else ok / checked

    @property
    def open_word(self) -> str:
        """How an incident without recovery reads: the period may be over."""
        return "open at period end" if self.until < self.generated else "still open"

    @property
    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.open]

    @property
    def resolved_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if not i.open]


def client_hosts(history: History, client: str,
                 host_vars: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The client's hosts: remembered from runs, plus the inventory's (host var
    ``client``) when one is given."""
    hosts = {h for h, c in host_clients(history).items() if c == client}
    for name, hv in (host_vars or {}).items():
        if str(hv.get("client", "")) == client:
            hosts.add(name)
    return sorted(hosts)


def _playbooks(history: History, run_ids: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    ids = sorted(run_ids)
    for i in range(0, len(ids), _IDS_PER_QUERY):
        chunk = ids[i:i + _IDS_PER_QUERY]
        for r in history.query(f"SELECT id, playbook FROM runs WHERE id IN"
                               f" ({','.join('?' * len(chunk))})", tuple(chunk)):
            out[r["id"]] = r["playbook"]
    return out


def _timelines(history: History, hosts: Sequence[str], start: datetime, end: datetime,
               periods: Mapping[str, timedelta]) -> dict[tuple[str, str, str], list[Point]]:
    """(host, check, name) -> points from ``start - LOOKBACK`` to ``end``."""
    raw: list[Any] = []
    lo, hi = (start - LOOKBACK).timestamp(), end.timestamp()
    for host in hosts:
        raw += history.query(
            "SELECT host, check_name, name, status, summary, ts, run_id FROM results"
            " WHERE host=? AND ts>=? AND ts<? ORDER BY ts, id", (host, lo, hi))
    books = _playbooks(history, {r["run_id"] for r in raw})
    out: dict[tuple[str, str, str], list[Point]] = {}
    for r in raw:
        period = periods.get(books.get(r["run_id"], ""))
        hold = period * STALE_FACTOR if period else UNSCHEDULED_MAX_AGE
        try:
            status = Status(r["status"])
        except ValueError:
            status = Status.UNKNOWN
        out.setdefault((r["host"], r["check_name"], r["name"]), []).append(
            Point(datetime.fromtimestamp(r["ts"], UTC), status, r["summary"], hold,
                  r["run_id"]))
    return out


def _planned(host_vars: Mapping[str, Mapping[str, Any]], hosts: Sequence[str],
             now: datetime, notes: list[str], count: int = 6) -> list[PlannedWindow]:
    found: dict[tuple[datetime, datetime, str], list[str]] = {}
    for host in hosts:
        hv = host_vars.get(host)
        if hv is None:
            continue
        try:
            upcoming = HostWindows(hv).upcoming(now, count=3)
        except ValueError as exc:
            notes.append(f"{host}: maintenance windows cannot be read: {exc}")
            continue
        for start, end, label in upcoming:
            found.setdefault((start, end, label), []).append(host)
    keys = sorted(found)[:count]
    return [PlannedWindow(s, e, label, tuple(found[(s, e, label)])) for s, e, label in keys]


#: At least this many checks of one host failing UNKNOWN over the same span read as one
#: "host down" incident, not one per check.
DOWN_CHECKS = 3


def collapse_down(found: Sequence[Incident]) -> list[Incident]:
    """Incidents of one host with the same start and end, all UNKNOWN (it could not be
    reached), as one incident naming how many checks it covered."""
    groups: dict[tuple[str, object, object], list[Incident]] = {}
    for i in found:
        # Checks of one run start seconds apart: the run ids say they went down together.
        key = (i.host, i.start_run or i.start, i.end_run or i.end)
        groups.setdefault(key, []).append(i)
    out: list[Incident] = []
    for (host, _, _), same in groups.items():
        if len(same) >= DOWN_CHECKS and all(i.worst is Status.UNKNOWN for i in same):
            first = min(same, key=lambda i: i.start)
            ends = [i.end for i in same]
            end = None if None in ends else min(e for e in ends if e is not None)
            out.append(Incident(host, "*", f"all {len(same)} checks", first.start, end,
                                Status.UNKNOWN, first.summary, sum(i.results for i in same),
                                first.start_run, first.end_run))
        else:
            out += same
    return out


def build_client_report(history: History, client: str, period: Period, *,
                        host_vars: Mapping[str, Mapping[str, Any]] | None = None,
                        now: datetime | None = None,
                        schedules: Mapping[str, timedelta] | None = None,
                        fixes: FixesSource | None = None,
                        docs: DocsSource | None = None) -> ClientReport:
    """Everything the client report says about ``client`` over ``period``.

    :param host_vars: the inventory's host vars (maintenance windows, clients); without
        them the "planned" part says no inventory was given.
    :raises MonthlyReportError: no hosts known for the client, or no results in the period.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    hosts = client_hosts(history, client, host_vars)
    if not hosts:
        raise MonthlyReportError(f"no hosts known for client '{client}' (run a playbook on"
                                 " its hosts, or pass the inventory with -i)")
    until = min(period.end, now)
    periods = schedule_periods(history)
    periods.update(schedules or {})
    lines: list[CheckLine] = []
    found: list[Incident] = []
    total = 0
    for (host, check, name), points in sorted(_timelines(history, hosts, period.start,
                                                         period.end, periods).items()):
        inside = [p for p in points if p.ts >= period.start]
        mine = incidents(points, period.start, until, host=host, check=check, name=name)
        found += mine
        if not inside and not mine:
            continue
        total += len(inside)
        lines.append(CheckLine(host, check, name,
                               availability(points, period.start, until, UNSCHEDULED_MAX_AGE),
                               len(inside), Status.worst(p.status for p in inside), len(mine)))
    if total == 0:
        raise MonthlyReportError(f"no results for client '{client}' in {period.label}"
                                 f" ({period.start:%Y-%m-%d %H:%M} to"
                                 f" {period.end:%Y-%m-%d %H:%M} UTC)")
    found = collapse_down(found)
    found.sort(key=lambda i: (i.start, i.host, i.check))
    report = ClientReport(
        client=client, period=period, generated=now, until=until, hosts=hosts,
        checks=lines, incidents=found,
        patches=patch_facts(history, hosts, period.start, until, UNSCHEDULED_MAX_AGE),
        backups=backup_facts(history, hosts, period.start, until),
        disks=disk_forecasts(history, hosts, period.start, until),
        results=total, current=current_state(history, client=client, now=now).client(client))
    if fixes is not None:
        report.fixes = sorted(fixes(hosts, period.start, until), key=lambda f: f.when)
    if docs is not None:
        report.doc_changes = sorted(docs(hosts, period.start, until), key=lambda d: d.when)
    if host_vars is not None:
        report.planned = _planned(host_vars, hosts, now, report.notes)
    return report
