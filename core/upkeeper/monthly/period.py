"""The period a client report covers: a calendar month or ``since``/``until`` dates, in the
client's timezone (the ``timezone`` host var its hosts share, as for maintenance windows),
else UTC. A month runs from local midnight on the 1st to local midnight on the 1st of the
next month, so November in Europe/Berlin starts at 2026-10-31 23:00 UTC.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from upkeeper.engine.windows import get_zone, resolve_local

__all__ = ["Period", "PeriodError", "client_timezone", "month_period", "range_period"]

UTC = timezone.utc
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")


class PeriodError(ValueError):
    """A month or date that cannot be read (the message says which and why)."""


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    timezone: str
    label: str

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def local(self, dt: datetime) -> datetime:
        return dt.astimezone(get_zone(self.timezone))


def _midnight(day: date, zone: str) -> datetime:
    return resolve_local(datetime.combine(day, time(0, 0)), get_zone(zone))


def _zone(name: str) -> str:
    try:
        return get_zone(name).key
    except ValueError as exc:
        raise PeriodError(str(exc)) from None


def month_period(month: str, zone: str = "UTC") -> Period:
    """``2026-11`` -> that calendar month in ``zone``."""
    m = _MONTH.match(month.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise PeriodError(f"month {month!r}: expected YYYY-MM, e.g. 2026-11")
    zone = _zone(zone)
    first = date(int(m.group(1)), int(m.group(2)), 1)
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return Period(_midnight(first, zone), _midnight(nxt, zone), zone,
                  first.strftime("%B %Y"))


def _day(value: str, what: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{what} {value!r}: expected a date YYYY-MM-DD") from None


def range_period(since: str, until: str | None, zone: str = "UTC",
                 today: date | None = None) -> Period:
    """From local midnight of ``since`` to local midnight after ``until`` (both days
    included; ``until`` defaults to today)."""
    zone = _zone(zone)
    first = _day(since, "--since")
    last = _day(until, "--until") if until else (today or datetime.now(UTC).date())
    if last < first:
        raise PeriodError(f"--until {last} is before --since {first}")
    return Period(_midnight(first, zone), _midnight(last + timedelta(days=1), zone), zone,
                  f"{first.isoformat()} to {last.isoformat()}")


def client_timezone(host_vars: Iterable[Mapping[str, Any]]) -> str:
    """The ``timezone`` most of a client's hosts name (valid ones only), else UTC."""
    names: Counter[str] = Counter()
    for hv in host_vars:
        value = hv.get("timezone")
        if value:
            try:
                names[get_zone(value).key] += 1
            except ValueError:
                continue
    return names.most_common(1)[0][0] if names else "UTC"
