"""Playbook ``schedule`` specs: validation with file:line errors, due times, jitter.

Due times are a pure function of the spec (never of when the daemon started), so a
restarted daemon computes the same slots and can tell which already ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeeper.engine.windows import DAY_NAMES, get_zone, resolve_local
from upkeeper.measures import parse_duration, warn_bare_duration

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.yamlsource import KeyPath

UTC = timezone.utc
KEYS = ("every", "at", "timezone", "jitter", "catch_up")
UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
_EVERY_RE = re.compile(r"^(?:(\d+)\s*)?([a-z]+)$")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: The longest interval, jitter or catch-up a schedule may name (and the longest CLI
#: duration): ten years. Larger values overflow date arithmetic and are always typos.
MAX_SECONDS = 10 * 366 * 86400
_EPOCH = datetime(1970, 1, 1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class ScheduleError(ValueError):
    """A schedule value is invalid (message without location; callers add file:line)."""

    def __init__(self, key: str | None, message: str) -> None:
        self.key = key
        super().__init__(message)


def duration_seconds(value: Any, what: str = "") -> float:
    """Seconds of a schedule or command-line duration, at most :data:`MAX_SECONDS`.

    Read by :func:`upkeeper.measures.parse_duration`, so units are required (``30s``,
    ``5m``, ``1h30m``, ``2 hours``). A bare number was seconds before API 1.1 and still is,
    with a deprecation warning; ``0`` needs no unit.
    """
    bare = not isinstance(value, bool) and (
        isinstance(value, (int, float)) or _BARE_NUMBER.fullmatch(str(value).strip()))
    try:
        if bare and float(value) > 0:
            warn_bare_duration(value, "s", what)
        seconds = parse_duration(value, bare_unit="s").total_seconds()
    except ValueError as exc:
        raise ScheduleError(None, f"{what}: {exc}" if what else str(exc)) from None
    if seconds > MAX_SECONDS:
        raise ScheduleError(None, f"{what or 'duration'} {value!r} is longer than the limit "
                                  "of 10 years")
    return seconds


def local_zone_name() -> str:
    """The machine's IANA zone (``$TZ`` or /etc/localtime), else UTC."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        try:
            return get_zone(tz).key
        except ValueError:
            pass
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    if "zoneinfo/" in target:
        name = target.split("zoneinfo/", 1)[1]
        try:
            return get_zone(name).key
        except ValueError:
            return "UTC"
    return "UTC"


@dataclass(frozen=True)
class ScheduleSpec:
    """One validated schedule of a playbook.

    ``unit`` is seconds/minutes/hours/days; ``weekday`` (0 = Monday) makes it weekly.
    Seconds and minutes count from the Unix epoch; hours, days and weekdays follow the
    wall clock of ``timezone`` (so ``every: day, at: "02:00"`` stays at 02:00 across DST).
    """

    index: int
    unit: str
    interval: int
    at: time | None
    timezone: str
    jitter: float = 0.0
    catch_up: float | None = None
    weekday: int | None = None

    @property
    def period(self) -> float:
        """Nominal seconds between slots."""
        if self.weekday is not None:
            return 7 * 86400.0
        return float(self.interval * UNIT_SECONDS[self.unit])

    @property
    def fingerprint(self) -> str:
        """Changes when anything that moves due times changes."""
        raw = json.dumps([self.unit, self.interval, str(self.at), self.timezone, self.weekday])
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def describe(self) -> str:
        what = (f"every {DAY_NAMES[self.weekday]}" if self.weekday is not None else
                f"every {self.interval} {self.unit}" if self.interval != 1 else
                f"every {self.unit[:-1]}")
        if self.at is not None:
            what += f" at {self.at.isoformat()}"
        if self.unit in ("hours", "days") or self.weekday is not None:
            what += f" {self.timezone}"
        if self.jitter:
            what += f" (jitter {int(self.jitter)}s)"
        return what


def _instants(local: datetime, zone: Any) -> list[datetime]:
    """Every UTC instant at which the local clock shows ``local`` (0, 1 or 2)."""
    out: list[datetime] = []
    for fold in (0, 1):
        inst = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if inst.astimezone(zone).replace(tzinfo=None) == local and inst not in out:
            out.append(inst)
    return sorted(out)


def iter_slots(spec: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """Due times (UTC, ascending) strictly after ``after``, without jitter."""
    after = after.astimezone(UTC)
    zone = get_zone(spec.timezone)
    at = spec.at or time(0, 0)
    phase = at.hour * 3600 + at.minute * 60 + at.second
    if spec.unit in ("seconds", "minutes"):
        period = spec.period
        k = (after.timestamp() - phase) // period + 1
        while True:
            yield datetime.fromtimestamp(phase + k * period, tz=UTC)
            k += 1
    if spec.unit == "hours":
        period = int(spec.period)
        local = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=3)
        offset = (local - _EPOCH).total_seconds()
        k = int((offset - phase) // period)
        while True:
            candidate = _EPOCH + timedelta(seconds=phase + k * period)
            for inst in _instants(candidate, zone):
                if inst > after:
                    yield inst
            k += 1
    day = after.astimezone(zone).date() - timedelta(days=1)
    while True:
        if (spec.weekday is None and (day.toordinal() - _EPOCH_ORDINAL) % spec.interval == 0) \
                or day.weekday() == spec.weekday:
            inst = resolve_local(datetime.combine(day, at), zone)
            if inst > after:
                yield inst
        day += timedelta(days=1)


def next_due(spec: ScheduleSpec, after: datetime) -> datetime:
    return next(iter_slots(spec, after))


def slots_between(spec: ScheduleSpec, after: datetime, until: datetime,
                  limit: int = 1000) -> tuple[list[datetime], int]:
    """Due times in (after, until]: the last ``limit`` of them and how many in all."""
    skipped = 0
    if spec.unit in ("seconds", "minutes"):
        # Fixed grid: count arithmetically instead of walking months of 1-second slots.
        skipped = max(0, int((until - after).total_seconds() // spec.period) - limit)
        after = after + timedelta(seconds=skipped * spec.period)
    kept: list[datetime] = []
    for due in iter_slots(spec, after):
        if due > until:
            break
        kept.append(due)
    return kept[-limit:], skipped + len(kept)


def jitter_offset(spec: ScheduleSpec, key: str, due: datetime) -> timedelta:
    """A stable offset in [0, jitter) for one slot: the same after a restart, different
    across playbooks so many clients' runs spread out."""
    if spec.jitter <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{key}|{spec.index}|{due.isoformat()}".encode()).hexdigest()
    return timedelta(seconds=int(digest[:12], 16) % int(spec.jitter * 1000) / 1000)


def _parse_every(value: Any) -> tuple[str, int, int | None]:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ScheduleError("every", "every must be a string such as '10 minutes', 'day'"
                                     " or 'monday'")
    text = " ".join(str(value).lower().split())
    m = _EVERY_RE.match(text)
    if not m:
        raise ScheduleError("every", f"every {value!r}: expected 'N seconds|minutes|hours|days',"
                                     " 'hour', 'day' or 'monday'..'sunday'")
    count = int(m.group(1)) if m.group(1) else 1
    word = m.group(2)
    if count < 1:
        raise ScheduleError("every", f"every {value!r}: the interval must be at least 1")
    if count * UNIT_SECONDS.get(word if word.endswith("s") else word + "s", 1) > MAX_SECONDS:
        raise ScheduleError("every", f"every {value!r}: longer than the limit of 10 years")
    if word.endswith("s") and word[:-1] in DAY_NAMES and count != 1:
        word = word[:-1]
    if word in DAY_NAMES:
        if count != 1:
            raise ScheduleError("every", f"every {value!r}: weekdays cannot take a count")
        return "days", 1, DAY_NAMES.index(word)
    unit = word if word.endswith("s") else word + "s"
    if unit not in UNIT_SECONDS:
        raise ScheduleError("every", f"every {value!r}: unknown unit {word!r} (seconds,"
                                     " minutes, hours, days or monday..sunday)")
    return unit, count, None


def _parse_at(value: Any, unit: str, weekday: int | None) -> time:
    text = str(value).strip()
    if unit == "seconds":
        raise ScheduleError("at", "'at' cannot be used with every N seconds")
    if unit == "minutes":
        m = re.fullmatch(r":(\d{2})", text)
        fields = (0, 0, int(m.group(1))) if m else None
        hint = "':SS' for minute schedules"
    elif unit == "hours" and weekday is None:
        m = re.fullmatch(r"(\d{2})?:(\d{2})", text)
        fields = ((0, int(m.group(1)), int(m.group(2))) if m and m.group(1)
                  else (0, int(m.group(2)), 0) if m else None)
        hint = "'MM:SS' or ':MM' for hour schedules"
    else:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
        fields = (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) if m else None
        hint = "'HH:MM' or 'HH:MM:SS' for day and weekday schedules"
    if fields is None:
        raise ScheduleError("at", f"at {value!r}: expected {hint}")
    hour, minute, second = fields
    if hour > 23 or minute > 59 or second > 59:
        raise ScheduleError("at", f"at {value!r}: not a valid time")
    return time(hour, minute, second)


def parse_spec(raw: Any, index: int, default_timezone: str | None = None) -> ScheduleSpec:
    """Validate one schedule mapping; ScheduleError.key names the offending key."""
    if not isinstance(raw, Mapping):
        raise ScheduleError(None, "a schedule is a mapping such as {every: day, at: '02:00'}")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise ScheduleError(str(unknown[0]), f"unknown schedule key {unknown[0]!r}"
                                             f" (known: {', '.join(KEYS)})")
    if "every" not in raw:
        raise ScheduleError(None, "schedule needs 'every' (e.g. every: day)")
    unit, interval, weekday = _parse_every(raw["every"])
    at = _parse_at(raw["at"], unit, weekday) if raw.get("at") is not None else None
    try:
        zone = get_zone(raw.get("timezone") or default_timezone or local_zone_name()).key
    except ValueError as exc:
        raise ScheduleError("timezone", str(exc)) from None
    try:
        jitter = duration_seconds(raw.get("jitter", 0), "jitter")
    except ScheduleError as exc:
        raise ScheduleError("jitter", str(exc)) from None
    catch_up = None
    if raw.get("catch_up") is not None:
        try:
            catch_up = duration_seconds(raw["catch_up"], "catch_up")
        except ScheduleError as exc:
            raise ScheduleError("catch_up", str(exc)) from None
    spec = ScheduleSpec(index=index, unit=unit, interval=interval, at=at, timezone=zone,
                        jitter=jitter, catch_up=catch_up, weekday=weekday)
    if jitter >= spec.period:
        raise ScheduleError("jitter", f"jitter {raw.get('jitter')!r} must be shorter than the"
                                      f" interval ({int(spec.period)}s)")
    return spec


def parse_schedule_value(
    raw: Any, error: Callable[[KeyPath, str], Exception],
    default_timezone: str | None = None,
) -> list[ScheduleSpec]:
    """A playbook's ``schedule`` (one mapping or a list): ``error(key_path, msg)`` builds
    the exception raised for the first problem."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    prefix: tuple[str | int, ...] = ("schedule",)
    if isinstance(raw, list) and not raw:
        raise error(prefix, "schedule is an empty list (remove it or add an entry)")
    specs = []
    for i, item in enumerate(items):
        base = (*prefix, i) if isinstance(raw, list) else prefix
        try:
            specs.append(parse_spec(item, i, default_timezone))
        except ScheduleError as exc:
            path = (*base, exc.key) if exc.key else base
            raise error(path, f"schedule: {exc}") from None
    return specs


def parse_schedules(playbook: Playbook) -> list[ScheduleSpec]:
    """Validate ``playbook.schedule``; raises PlaybookError with file:line:column."""
    return parse_schedule_value(playbook.schedule, playbook.error)


def validate_schedule(playbook: Playbook) -> list[str]:
    """Problems in ``playbook.schedule`` as ``file:line:column: message`` strings
    (``upkeeper validate`` calls this)."""
    from upkeeper.yamlsource import SourceError

    try:
        parse_schedules(playbook)
    except SourceError as exc:
        return [str(exc)]
    return []
