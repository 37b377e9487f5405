"""The shared vocabulary of checks: durations, sizes, warn/crit thresholds and findings.

Public submodule for plugin authors (``from upkeeper.measures import Duration, grade``).
Every built-in uses it, so one idea has one meaning everywhere:

- **Durations** carry their unit: ``"26h"``, ``"2d"``, ``"1d12h"``, ``"90m"``, ``"30s"``,
  ``"1w"``, ``"2 hours"``. A bare number is ambiguous and refused, except in a field that
  declares the unit its old releases used (:func:`duration_field_type`), which accepts it
  with a deprecation warning.
- **Sizes** are bytes or a number with a binary unit: ``"500MiB"``, ``"2G"``, ``"1.5 TiB"``;
  K, M, G, T and P are powers of 1024 with or without ``i``, as ``df -h`` prints them.
- **Thresholds**: a value *at or past* a threshold has that status (``>=`` when higher is
  worse, ``<=`` when lower is worse); CRIT is tested before WARN. Param names follow one
  pattern: ``warn_<measure>`` / ``crit_<measure>`` (``warn_pct``, ``crit_age``).
- **Findings** of one check combine into one status (the worst) and one summary.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

from upkeeper.models import Status

__all__ = [
    "Duration",
    "Findings",
    "Size",
    "UpkeeperDeprecationWarning",
    "duration_field_type",
    "format_duration",
    "format_size",
    "grade",
    "parse_duration",
    "parse_size",
    "renamed_params",
    "warn_bare_duration",
]

log = logging.getLogger("upkeeper.measures")


class UpkeeperDeprecationWarning(DeprecationWarning):
    """Something a plugin or playbook uses will go away in the next minor API version."""


_UNIT_SECONDS = {
    "w": 604800, "week": 604800, "weeks": 604800,
    "d": 86400, "day": 86400, "days": 86400,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)(b?)$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_DURATION_EXAMPLES = "e.g. 30s, 90m, 26h, 2d, 1d12h, 1w"


def parse_duration(value: Any, *, bare_unit: str | None = None) -> timedelta:
    """A non-negative duration from text with units, or a ``timedelta``.

    :param bare_unit: the unit a bare number is read in (``"s"`` or ``"h"``...). ``None``
        (the default) refuses bare numbers as ambiguous.
    :raises ValueError: with the accepted forms in the message.
    """
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError(f"negative duration: {value}")
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a duration: {value!r} ({_DURATION_EXAMPLES})")
    text = str(value).strip().lower()
    if isinstance(value, (int, float)) or _BARE_NUMBER.fullmatch(text):
        number = float(value) if isinstance(value, (int, float)) else float(text)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"not a duration: {value!r} (negative or not finite)")
        if bare_unit is None:
            raise ValueError(f"{value!r} has no unit: write it with one ({_DURATION_EXAMPLES})")
        return _seconds(number * _UNIT_SECONDS[bare_unit], value)
    pos, seconds = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if text[pos:m.start()].strip() or m.group(2) not in _UNIT_SECONDS:
            break
        seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"not a duration: {value!r} ({_DURATION_EXAMPLES})")
    return _seconds(seconds, value)


def _seconds(seconds: float, value: Any) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(f"duration {value!r} is too long") from None


def format_duration(delta: timedelta | float) -> str:
    """Human units, two at most: ``"45 s"``, ``"12 min"``, ``"3 h 12 min"``, ``"4 d 6 h"``.

    A float is seconds. A negative duration (clock skew) reads ``"... in the future"``.
    """
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    if seconds < 0:
        return f"{format_duration(-seconds)} in the future"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, _ = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``"500MiB"``, ``"1.5G"``, ``"10k"``, ``"2 TiB"`` (binary units)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"not a size: {value!r}")
        return int(value)
    m = _SIZE_RE.match(str(value).strip())
    if not m or (m.group(3) and not m.group(2)):
        raise ValueError(f"not a size: {value!r} (e.g. 1048576, 500MiB, 2G, 1.5 TiB)")
    size = float(m.group(1)) * 1024 ** _SIZE_POWER[m.group(2).lower()]
    if not math.isfinite(size):
        raise ValueError(f"not a size: {value!r} (too large)")
    return int(size)


def format_size(size: float) -> str:
    """``"512 B"``, ``"1.5 GiB"``: binary units, one decimal above bytes."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def grade(value: float | None, warn: float | None = None, crit: float | None = None, *,
          higher_is_worse: bool = True) -> Status:
    """The status of ``value`` against optional thresholds: at or past one is that level.

    ``grade(95, warn=85, crit=95)`` is CRIT; ``grade(4, warn=10, crit=5,
    higher_is_worse=False)`` (GB free) is CRIT. A missing value is UNKNOWN.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Status.UNKNOWN

    def past(limit: float | None) -> bool:
        if limit is None:
            return False
        return value >= limit if higher_is_worse else value <= limit

    if past(crit):
        return Status.CRIT
    if past(warn):
        return Status.WARN
    return Status.OK


@dataclass
class Findings:
    """What one check found, combined into one status and one summary.

    ``add`` each problem (or OK note); ``status`` is the worst (OK when nothing was added)
    and ``summary()`` joins the messages of the worst ones first.
    """

    items: list[tuple[Status, str]] = field(default_factory=list)

    def add(self, status: Status, message: str) -> None:
        self.items.append((status, message))

    def extend(self, items: Iterable[tuple[Status, str]]) -> None:
        self.items.extend(items)

    @property
    def status(self) -> Status:
        return Status.worst(s for s, _ in self.items)

    def summary(self, ok_text: str = "OK", limit: int = 3) -> str:
        """The messages, worst first, at most ``limit`` of them plus "(+N more)"."""
        problems = sorted((i for i in self.items if i[0] not in (Status.OK, Status.SKIPPED)),
                          key=lambda i: -i[0].severity)
        if not problems:
            return ok_text
        shown = "; ".join(m for _, m in problems[:limit])
        more = len(problems) - limit
        return f"{shown} (+{more} more)" if more > 0 else shown


def duration_field_type(bare_unit: str | None = None, *, legacy: bool = True) -> Any:
    """A pydantic field type for durations.

    :param bare_unit: read a bare number in this unit (``"h"``, ``"s"``); with ``legacy``
        it is accepted with an :class:`UpkeeperDeprecationWarning` asking for a unit.
    """
    description = f"a duration with a unit ({_DURATION_EXAMPLES})"

    def parse(value: Any, info: ValidationInfo) -> timedelta:
        if bare_unit is not None and legacy and _is_bare_number(value):
            warn_bare_duration(value, bare_unit, f"param '{info.field_name}'"
                               if info.field_name else "")
        return parse_duration(value, bare_unit=bare_unit)

    return Annotated[
        timedelta,
        BeforeValidator(parse),
        PlainSerializer(format_duration, return_type=str),
        WithJsonSchema({"type": "string", "examples": ["26h", "2d", "90m"],
                        "description": description}),
    ]


def warn_bare_duration(value: Any, bare_unit: str, what: str = "") -> None:
    """Warn that a bare number was read as ``bare_unit`` (the legacy reading of a field
    that predates units): an :class:`UpkeeperDeprecationWarning` and a log line."""
    shown = str(value).strip()
    message = (f"{what + ': ' if what else ''}duration {shown} without a unit is read as "
               f"{shown}{bare_unit}; write '{shown}{bare_unit}' (bare numbers are refused "
               "from API 2.0)")
    warnings.warn(UpkeeperDeprecationWarning(message), stacklevel=3)
    log.warning("%s", message)


def _is_bare_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or bool(_BARE_NUMBER.fullmatch(str(value).strip()))


#: A duration that must carry its unit.
Duration = duration_field_type()

#: A size in bytes, or with a binary unit.
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": ["string", "integer"], "examples": ["500MiB", 1048576],
                    "description": "bytes, or a size such as 500MiB or 2G"}),
]


def renamed_params(renames: Mapping[str, str], *, since: str,
                   owner: str = "") -> Callable[[Any], Any]:
    """A ``model_validator(mode="before")`` body accepting old param names for one version.

    Usage in a Params model::

        _old_names = model_validator(mode="before")(
            renamed_params({"max_age": "warn_age"}, since="1.1", owner="backup.restic"))

    An old name is moved to the new one with a deprecation warning; both at once is an
    error naming them.
    """

    def move(data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for old, new in renames.items():
            if old not in out:
                continue
            if new in out:
                raise ValueError(f"'{old}' is the old name of '{new}': give only '{new}'")
            out[new] = out.pop(old)
            where = f"{owner}: " if owner else ""
            message = (f"{where}param '{old}' is deprecated since API {since}, use '{new}' "
                       "(the old name is accepted until the next minor version)")
            warnings.warn(UpkeeperDeprecationWarning(message), stacklevel=2)
            log.warning("%s", message)
        return out

    return move
