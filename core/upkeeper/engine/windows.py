"""Per-client maintenance windows and blackout dates, evaluated DST-correctly with zoneinfo.

Pure functions over host vars (``maintenance_windows``, ``timezone``, ``blackout_dates``):
actions ask whether a host is inside a window, notifiers whether to mute, the CLI when
the next window opens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

log = logging.getLogger("upkeeper.engine.windows")

UTC = timezone.utc
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ORDINALS = {"1st": 1, "first": 1, "2nd": 2, "second": 2, "3rd": 3, "third": 3, "4th": 4,
            "fourth": 4, "5th": 5, "fifth": 5, "last": -1}
#: How far ahead ``next_start`` is searched (a "5th Mon" window can be months away).
SEARCH_DAYS = 400

_TIME = r"(\d{1,2}):(\d{2})"
_WINDOW_RE = re.compile(
    rf"^(?P<days>.+?)\s+{_TIME}\s*-\s*(?:(?P<endday>[A-Za-z]+)\s+)?(?P<eh>\d{{1,2}}):(?P<em>\d{{2}})$"
)
_EXAMPLES = ('"Sat 22:00-Sun 04:00", "2nd Tue 20:00-23:30", "daily 01:00-05:00",'
             ' "Mon-Fri 22:00-06:00", "last Sun 01:00-03:00"')


@dataclass(frozen=True)
class Window:
    """One recurring window: it opens on each eligible local date at ``start`` and closes
    ``end_offset`` days later at ``end`` (local wall-clock times of the host's timezone)."""

    text: str
    weekdays: frozenset[int]
    start: time
    end: time
    end_offset: int
    #: 1..5 for "nth weekday of the month", -1 for "last", None for every eligible day.
    ordinal: int | None = None

    def opens_on(self, day: date) -> bool:
        if day.weekday() not in self.weekdays:
            return False
        if self.ordinal is None:
            return True
        if self.ordinal == -1:
            return (day + timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 + 1 == self.ordinal

    def occurrences(self, tz: tzinfo, first: date, last: date
                    ) -> Iterator[tuple[datetime, datetime]]:
        """(start, end) in UTC of every occurrence opening on a local date in [first, last]."""
        day = first
        while day <= last:
            if self.opens_on(day):
                start = resolve_local(datetime.combine(day, self.start), tz)
                end = resolve_local(datetime.combine(day + timedelta(days=self.end_offset),
                                                     self.end), tz)
                if end > start:
                    yield start, end
            day += timedelta(days=1)


@dataclass
class WindowState:
    """Where ``now`` stands for one host: inside a window (until when) or when the next opens."""

    inside: bool
    current_end: datetime | None
    next_start: datetime | None
    reason: str


def resolve_local(local: datetime, tz: tzinfo) -> datetime:
    """A local wall-clock time as a UTC instant: the first instant the clock shows it.

    Ambiguous times (clocks going back) resolve to their first occurrence; times skipped
    by clocks going forward resolve to the instant of the jump, when the local clock
    passes them.
    """
    naive = local.replace(tzinfo=None)
    first = naive.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 reads it with the new offset (earlier instant), fold=0 with the
    # old one (later instant); the jump lies between, so bisect on whole seconds.
    lo = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    hi = first
    new_offset = hi.astimezone(tz).utcoffset()
    while (hi - lo) > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).utcoffset() == new_offset:
            hi = mid
        else:
            lo = mid
    return hi


def get_zone(name: Any) -> ZoneInfo:
    """An IANA zone (``Europe/London``); ValueError names the bad value."""
    if name is None or name == "":
        return ZoneInfo("UTC")
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {name!r} (use an IANA name such as"
                         " 'Europe/London' or 'America/New_York')") from None


def _day(token: str, text: str) -> int:
    t = token.lower()
    for i, name in enumerate(DAY_NAMES):
        if len(t) >= 3 and name.startswith(t):
            return i
    raise ValueError(f"maintenance window {text!r}: unknown day {token!r}"
                     " (use Mon..Sun or Monday..Sunday)")


def _time(h: str, m: str, text: str, *, end: bool) -> time:
    hour, minute = int(h), int(m)
    if end and hour == 24 and minute == 0:
        return time(0, 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"maintenance window {text!r}: invalid time {h}:{m}")
    return time(hour, minute)


def _days(spec: str, text: str) -> tuple[frozenset[int], int | None]:
    words = spec.split()
    if len(words) == 2 and words[0].lower() in ORDINALS:
        return frozenset({_day(words[1], text)}), ORDINALS[words[0].lower()]
    if len(words) != 1:
        raise ValueError(f"maintenance window {text!r}: cannot read days {spec!r}"
                         f" (examples: {_EXAMPLES})")
    word = words[0]
    if word.lower() in ("daily", "everyday", "day"):
        return frozenset(range(7)), None
    if word.lower() == "weekdays":
        return frozenset(range(5)), None
    if word.lower() == "weekends":
        return frozenset({5, 6}), None
    days: set[int] = set()
    for part in word.split(","):
        if "-" in part:
            a, _, b = part.partition("-")
            first, last = _day(a, text), _day(b, text)
            days.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            days.add(_day(part, text))
    return frozenset(days), None


def parse_window(text: str) -> Window:
    """Parse ``"Sat 22:00-Sun 04:00"``, ``"2nd Tue 20:00-23:30"``, ``"daily 01:00-05:00"``,
    ``"last Sun 01:00-03:00"``, ``"Mon-Fri 22:00-06:00"``.

    An end time at or before the start time falls on the next day; ``24:00`` is midnight
    at the end of the start day.

    :raises ValueError: with the window text and what is wrong.
    """
    if not isinstance(text, str):
        raise ValueError(f"maintenance window must be a string such as {_EXAMPLES},"
                         f" not {type(text).__name__}")
    norm = " ".join(text.split())
    m = _WINDOW_RE.match(norm)
    if not m:
        raise ValueError(f"maintenance window {text!r}: expected DAYS HH:MM-[DAY] HH:MM"
                         f" (examples: {_EXAMPLES})")
    weekdays, ordinal = _days(m["days"], text)
    start = _time(m.group(2), m.group(3), text, end=False)
    end_is_midnight = m["eh"] == "24"
    end = _time(m["eh"], m["em"], text, end=True)
    if m["endday"]:
        if len(weekdays) != 1:
            raise ValueError(f"maintenance window {text!r}: an end day needs a single start"
                             " day (for several days write e.g. 'Mon-Fri 22:00-06:00')")
        (start_day,) = weekdays
        offset = (_day(m["endday"], text) - start_day) % 7
        if offset == 0 and end <= start and not end_is_midnight:
            raise ValueError(f"maintenance window {text!r}: ends on the day it starts but"
                             " not after its start time")
        if end_is_midnight:
            offset += 1
    else:
        offset = 1 if end_is_midnight or end <= start else 0
        if end == start and not end_is_midnight:
            raise ValueError(f"maintenance window {text!r}: start and end are equal (for a"
                             " whole day write 00:00-24:00)")
    return Window(text=norm, weekdays=weekdays, start=start, end=end, end_offset=offset,
                  ordinal=ordinal)


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, date)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ValueError(f"{what} must be a string or a list, not {type(value).__name__}")


def _iso(value: Any, text: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"blackout date {text!r}: expected YYYY-MM-DD or"
                         " YYYY-MM-DD..YYYY-MM-DD") from None


def parse_blackouts(value: Any) -> list[tuple[date, date]]:
    """``blackout_dates`` as inclusive (first, last) local dates."""
    out = []
    for item in _as_list(value, "blackout_dates"):
        if isinstance(item, str) and ".." in item:
            a, _, b = item.partition("..")
            first, last = _iso(a, item), _iso(b, item)
            if last < first:
                raise ValueError(f"blackout date {item!r}: range ends before it starts")
        else:
            first = last = _iso(item, item)
        out.append((first, last))
    return out


def parse_windows(value: Any) -> list[Window]:
    """``maintenance_windows`` (one string or a list) as windows."""
    return [parse_window(w) for w in _as_list(value, "maintenance_windows")]


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    label: str


def _subtract(spans: list[_Span], cuts: list[tuple[datetime, datetime]]) -> list[_Span]:
    for cut_start, cut_end in cuts:
        kept = []
        for s in spans:
            if cut_end <= s.start or cut_start >= s.end:
                kept.append(s)
                continue
            if s.start < cut_start:
                kept.append(_Span(s.start, cut_start, s.label))
            if cut_end < s.end:
                kept.append(_Span(cut_end, s.end, s.label))
        spans = kept
    return spans


def _merge(spans: list[_Span]) -> list[_Span]:
    out: list[_Span] = []
    for s in sorted(spans, key=lambda s: (s.start, s.end)):
        if out and s.start <= out[-1].end:
            last = out[-1]
            out[-1] = _Span(last.start, max(last.end, s.end), last.label)
        else:
            out.append(s)
    return out


class HostWindows:
    """A host's parsed windows, zone and blackouts (parse once, ask many times)."""

    def __init__(self, host_vars: Mapping[str, Any]) -> None:
        self.windows = parse_windows(host_vars.get("maintenance_windows"))
        self.tz = get_zone(host_vars.get("timezone"))
        self.blackouts = parse_blackouts(host_vars.get("blackout_dates"))

    @property
    def defined(self) -> bool:
        return bool(self.windows)

    def _cuts(self) -> list[tuple[datetime, datetime]]:
        return [(resolve_local(datetime.combine(a, time()), self.tz),
                 resolve_local(datetime.combine(b + timedelta(days=1), time()), self.tz))
                for a, b in self.blackouts]

    def spans(self, now: datetime, days: int) -> list[_Span]:
        """Merged, blackout-free windows overlapping [now - 8 days, now + ``days``]."""
        today = now.astimezone(self.tz).date()
        raw = [_Span(s, e, w.text) for w in self.windows
               for s, e in w.occurrences(self.tz, today - timedelta(days=8),
                                         today + timedelta(days=days))]
        return _merge(_subtract(raw, self._cuts()))

    def blackout_at(self, now: datetime) -> tuple[date, date] | None:
        day = now.astimezone(self.tz).date()
        return next(((a, b) for a, b in self.blackouts if a <= day <= b), None)

    def upcoming(self, now: datetime, count: int = 3) -> list[tuple[datetime, datetime, str]]:
        """The current (if any) and next windows: (start, end, window text), UTC."""
        for days in (40, SEARCH_DAYS):
            found = [(s.start, s.end, s.label) for s in self.spans(now, days) if s.end > now]
            if len(found) >= count or days == SEARCH_DAYS:
                return found[:count]
        return []

    def state(self, now: datetime) -> WindowState:
        now = _aware(now)
        blackout = self.blackout_at(now)
        if not self.windows:
            if blackout:
                return WindowState(False, None, None, f"blackout {_fmt_range(blackout)}")
            return WindowState(True, None, None, "no maintenance windows defined")
        spans = [s for s in self.spans(now, 40) if s.end > now]
        if not spans:
            spans = [s for s in self.spans(now, SEARCH_DAYS) if s.end > now]
        current = next((s for s in spans if s.start <= now), None)
        upcoming = [s for s in spans if s.start > now]
        nxt = upcoming[0].start if upcoming else None
        where = f" ({self.tz.key})"
        if current:
            return WindowState(True, current.end, nxt,
                               f"inside window '{current.label}' until"
                               f" {_local(current.end, self.tz)}{where}")
        tail = (f"next window '{upcoming[0].label}' opens {_local(upcoming[0].start, self.tz)}"
                f"{where}" if upcoming else f"no window opens in the next {SEARCH_DAYS} days")
        if blackout:
            return WindowState(False, None, nxt, f"blackout {_fmt_range(blackout)}; {tail}")
        return WindowState(False, None, nxt, f"outside maintenance windows; {tail}")


def _aware(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _local(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def _fmt_range(r: tuple[date, date]) -> str:
    return r[0].isoformat() if r[0] == r[1] else f"{r[0].isoformat()}..{r[1].isoformat()}"


def window_state(host_vars: Mapping[str, Any], now: datetime) -> WindowState:
    """Whether a host is inside one of its maintenance windows at ``now``.

    A host without ``maintenance_windows`` is inside (reason "no maintenance windows
    defined") unless ``now`` falls on one of its ``blackout_dates``. Naive ``now`` is UTC.

    :raises ValueError: a window, timezone or blackout date cannot be read.
    """
    return HostWindows(host_vars).state(now)


def muted(host_vars: Mapping[str, Any], now: datetime) -> bool:
    """True when ``mute_in_window`` is set and the host is inside one of its defined windows.

    Bad window settings never mute (an alert too many beats a silent failure).
    """
    if not host_vars.get("mute_in_window"):
        return False
    try:
        hw = HostWindows(host_vars)
        return hw.defined and hw.state(now).inside
    except ValueError as exc:
        log.warning("not muting: %s", exc)
        return False
