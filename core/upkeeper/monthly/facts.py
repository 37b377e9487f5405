"""What the maintenance did over a period, read from stored metrics by name.

Core names no plugin: these are metric names any check may emit to appear in the period
report (the built-in patching, backup and disk plugins do). Documented in
docs/monthly.md:

- ``installed`` / ``rebooted``: an action applied updates (summed: patches applied).
- ``pending_security``: security updates waiting; compliance is the share of checked
  time with none pending (time-weighted like availability).
- ``integrity_ok``: a backup was verified (1) or failed verification (0).
- ``restore_ok``: a test restore passed (1) or failed (0).
- ``<device>:days_to_full`` / ``<device>:used_pct``: disk forecasts; the latest in the
  period is shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from upkeeper.models import Status
from upkeeper.monthly.timeline import Point, availability

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["BackupFacts", "DiskForecast", "PatchFacts", "backup_facts", "disk_forecasts",
           "metric_names", "patch_facts"]

UTC = timezone.utc
#: A forecast beyond this many days is not news for a client.
FORECAST_HORIZON_DAYS = 90.0


@dataclass
class PatchFacts:
    host: str
    installed: int = 0
    apply_runs: int = 0
    reboots: int = 0
    #: Share of checked time with no security update pending (None: never checked).
    compliance: float | None = None
    pending_security: int | None = None
    pending_total: int | None = None


@dataclass
class BackupFacts:
    host: str
    check: str
    verified: int = 0
    verify_failed: int = 0
    restores: int = 0
    restores_failed: int = 0
    last_age_hours: float | None = None
    last: datetime | None = None


@dataclass
class DiskForecast:
    host: str
    device: str
    days_to_full: float | None
    used_pct: float | None
    when: datetime
    soon: bool = field(default=False)


def _series(history: History, host: str, metric: str, start: float, end: float,
            ) -> list[tuple[str, float, float]]:
    """(check, value, ts) of one metric on one host in [start, end), oldest first."""
    rows = history.query("SELECT check_name, value, ts FROM metrics WHERE host=? AND"
                         " metric=? AND ts>=? AND ts<? ORDER BY ts", (host, metric, start, end))
    return [(r["check_name"], r["value"], r["ts"]) for r in rows]


def metric_names(history: History, host: str) -> list[str]:
    """Distinct metric names of a host, one index seek each (no scan of its values)."""
    names: list[str] = []
    last = ""
    while True:
        rows = history.query("SELECT metric FROM metrics WHERE host=? AND metric>?"
                             " ORDER BY metric LIMIT 1", (host, last))
        if not rows:
            return names
        last = rows[0][0]
        names.append(last)


def patch_facts(history: History, hosts: Sequence[str], start: datetime, end: datetime,
                max_gap: timedelta) -> list[PatchFacts]:
    out = []
    a, b = start.timestamp(), end.timestamp()
    lookback = (start - max_gap).timestamp()
    for host in hosts:
        facts = PatchFacts(host)
        for _, value, _ts in _series(history, host, "installed", a, b):
            facts.installed += int(value)
            facts.apply_runs += 1
        facts.reboots = int(sum(v for _, v, _ in _series(history, host, "rebooted", a, b)))
        pending = _series(history, host, "pending_security", lookback, b)
        if pending:
            points = [Point(datetime.fromtimestamp(ts, UTC),
                            Status.OK if value == 0 else Status.WARN) for _, value, ts in pending]
            facts.compliance = availability(points, start, end, max_gap).share
            if pending[-1][2] >= a:
                facts.pending_security = int(pending[-1][1])
        total = _series(history, host, "pending_total", a, b)
        if total:
            facts.pending_total = int(total[-1][1])
        if facts.apply_runs or pending:
            out.append(facts)
    return out


def backup_facts(history: History, hosts: Sequence[str], start: datetime,
                 end: datetime) -> list[BackupFacts]:
    out: dict[tuple[str, str], BackupFacts] = {}
    a, b = start.timestamp(), end.timestamp()

    def get(host: str, check: str) -> BackupFacts:
        return out.setdefault((host, check), BackupFacts(host, check))

    for host in hosts:
        for check, value, _ts in _series(history, host, "integrity_ok", a, b):
            f = get(host, check)
            f.verified += 1
            f.verify_failed += value == 0
        for check, value, _ts in _series(history, host, "restore_ok", a, b):
            f = get(host, check)
            f.restores += 1
            f.restores_failed += value == 0
        for check, value, ts in _series(history, host, "age_hours", a, b):
            if (host, check) in out or check.startswith("backup"):
                f = get(host, check)
                f.last_age_hours, f.last = value, datetime.fromtimestamp(ts, UTC)
    return sorted(out.values(), key=lambda f: (f.host, f.check))


def disk_forecasts(history: History, hosts: Sequence[str], start: datetime, end: datetime,
                   soon_days: float = 30.0) -> list[DiskForecast]:
    """The latest forecast per device in the period; those within ``soon_days`` first."""
    out = []
    a, b = start.timestamp(), end.timestamp()
    for host in hosts:
        names = metric_names(history, host)
        for name in names:
            if not name.endswith(":days_to_full"):
                continue
            device = name.rsplit(":", 1)[0]
            rows = _series(history, host, name, a, b)
            if not rows:
                continue
            _, days, ts = rows[-1]
            used_rows = _series(history, host, f"{device}:used_pct", ts, b)
            used = used_rows[0][1] if used_rows else None
            # A later usage without a forecast: growth stopped, the old forecast is void.
            if days > FORECAST_HORIZON_DAYS or (used_rows and used_rows[-1][2] > ts):
                continue
            out.append(DiskForecast(host, device, days, used, datetime.fromtimestamp(ts, UTC),
                                    soon=days <= soon_days))
    return sorted(out, key=lambda f: (f.days_to_full is None, f.days_to_full, f.host))
