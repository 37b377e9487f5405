"""Human durations and sizes for params ("26h", "2d", "90m", "500MiB") and for summaries."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_DURATION_FULL = re.compile(r"^(?:\s*\d+(?:\.\d+)?\s*[wdhms]\s*)+$", re.IGNORECASE)
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?)b?\s*$", re.IGNORECASE)
_SIZE_POWER = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def parse_duration(value: Any) -> timedelta:
    """``"26h"``, ``"2d"``, ``"1d12h"``, ``"90m"``, ``"1w"``; a bare number means hours.

    Hours are the natural unit of a backup RPO, so ``max_age: 26`` is 26 hours.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return timedelta(hours=float(value))
    text = str(value).strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return timedelta(hours=float(text))
    if not _DURATION_FULL.match(text):
        raise ValueError(f"not a duration: {value!r} (use e.g. 26h, 2d, 90m, 1d12h)")
    seconds = sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def parse_size(value: Any) -> int:
    """Bytes from ``1048576``, ``"500MiB"``, ``"1.5G"``, ``"10k"`` (K/M/G/T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"negative size: {value!r}")
        return int(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"not a size: {value!r} (use e.g. 1048576, 500MiB, 2G)")
    return int(float(m.group(1)) * 1024 ** _SIZE_POWER[m.group(2).lower()])


def format_duration(delta: timedelta) -> str:
    """``"3.2h"`` under two days, else ``"4d 6h"``; negative (clock skew) as ``"in the future"``."""
    seconds = delta.total_seconds()
    if seconds < 0:
        return f"{format_duration(-delta)} in the future"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    days, rest = divmod(seconds, 86400)
    return f"{days:.0f}d {rest / 3600:.0f}h"


def format_size(size: float) -> str:
    """``"1.5 GiB"`` style, binary units."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


#: A params field type: accepts "26h", "2d", numbers (hours); JSON Schema shows a string.
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: format_duration(d), return_type=str),
    WithJsonSchema({"type": ["string", "number"], "examples": ["26h", "2d", "90m"],
                    "description": "a duration: 26h, 2d, 90m, 1d12h; a number means hours"}),
]
#: A params field type: accepts bytes or "500MiB".
Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema({"type": ["string", "integer"], "examples": ["500MiB", 1048576],
                    "description": "bytes, or a size such as 500MiB or 2G"}),
]


def format_age(delta: timedelta) -> str:
    """How long something has been held, in plain units: ``"45 s"``, ``"12 min"``,
    ``"3 h 12 min"``, ``"2 d 5 h"``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
