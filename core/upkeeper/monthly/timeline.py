"""Availability and incidents of one check on one host, from its results over time.

The status timeline: each result's status holds from its time until the next result of
the same check, but for at most ``max_gap`` (the playbook's allowed age, as for stale
results in :mod:`upkeeper.monthly.state`); after that the check was *not checked* and
that time counts neither for nor against it. SKIPPED results are not checked either.

Availability is the share of checked time in the period that was OK. An incident is a
stretch of results that are not OK (WARN, CRIT or UNKNOWN): from the first such result
to the first OK result after it (recovered), or still open at the end of the period.
Incidents are found over the results before the period too, so one that began last
month and ended in this one shows its true start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from upkeeper.models import Status

__all__ = ["Availability", "Incident", "Point", "availability", "incidents"]


@dataclass(frozen=True)
class Point:
    """One result as the timeline sees it."""

    ts: datetime
    status: Status
    summary: str = ""
    #: How long this result speaks for its check (default: ``max_gap``).
    hold: timedelta | None = None
    run_id: str = ""


@dataclass(frozen=True)
class Availability:
    ok: timedelta
    checked: timedelta
    period: timedelta

    @property
    def share(self) -> float | None:
        """OK time / checked time, None when the check never ran in the period."""
        if self.checked <= timedelta(0):
            return None
        return self.ok / self.checked

    @property
    def coverage(self) -> float:
        """Checked time / the period."""
        return 0.0 if self.period <= timedelta(0) else min(1.0, self.checked / self.period)


@dataclass(frozen=True)
class Incident:
    """A problem from first seen to recovered (``end`` None: still open)."""

    host: str
    check: str
    name: str
    start: datetime
    end: datetime | None
    worst: Status
    summary: str
    results: int
    #: The runs of the first problem result and of the recovery ("" when unknown/open).
    start_run: str = ""
    end_run: str = ""

    def duration(self, until: datetime) -> timedelta:
        return (self.end or until) - self.start

    @property
    def open(self) -> bool:
        return self.end is None


def availability(points: Sequence[Point], start: datetime, end: datetime,
                 max_gap: timedelta) -> Availability:
    """Time-weighted share of OK in [start, end); ``points`` sorted by time and may
    begin before ``start`` (the status carried into the period)."""
    ok = checked = timedelta(0)
    for i, p in enumerate(points):
        if p.ts >= end:
            break
        nxt = points[i + 1].ts if i + 1 < len(points) else end
        held_until = min(nxt, p.ts + (p.hold or max_gap), end)
        lo = max(p.ts, start)
        if held_until <= lo or p.status is Status.SKIPPED:
            continue
        span = held_until - lo
        checked += span
        if p.status is Status.OK:
            ok += span
    return Availability(ok, checked, end - start)


def incidents(points: Sequence[Point], start: datetime, end: datetime, *, host: str,
              check: str, name: str) -> list[Incident]:
    """Incidents that overlap [start, end), from ``points`` sorted by time."""
    out: list[Incident] = []
    first: Point | None = None
    worst = Status.OK
    count = 0
    summary = ""
    for p in points:
        if p.ts >= end:
            break
        if p.status is Status.SKIPPED:
            continue
        if p.status is Status.OK:
            if first is not None:
                if p.ts > start:
                    out.append(Incident(host, check, name, first.ts, p.ts, worst, summary,
                                        count, first.run_id, p.run_id))
                first = None
            continue
        if first is None:
            first, worst, count = p, p.status, 0
        count += 1
        if p.status.severity >= worst.severity:
            worst, summary = p.status, p.summary
    if first is not None:
        out.append(Incident(host, check, name, first.ts, None, worst, summary, count,
                            first.run_id))
    return out
