"""Days-to-full forecast: a least-squares line through recent used-bytes samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 86400.0


@dataclass(frozen=True)
class Forecast:
    """A fitted growth trend and when it reaches the free space left."""

    days_to_full: float
    growth_bytes_per_day: float
    points: int
    span_hours: float
    since: datetime

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "days_to_full": round(self.days_to_full, 2),
            "growth_bytes_per_day": round(self.growth_bytes_per_day),
            "points": self.points,
            "span_hours": round(self.span_hours, 1),
            "since": self.since.isoformat(),
        }


def after_last_drop(samples: Sequence[tuple[datetime, float]],
                    drop_bytes: float) -> list[tuple[datetime, float]]:
    """The samples from the latest fall of at least ``drop_bytes`` (a cleanup) onwards."""
    start = 0
    for i in range(1, len(samples)):
        if samples[i - 1][1] - samples[i][1] >= drop_bytes:
            start = i
    return list(samples[start:])


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b*x``: returns (a, b, standard error of b)."""
    n = len(xs)
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return my, 0.0, math.inf
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    if n <= 2:
        return a, b, math.inf
    ssr = sum((y - (a + b * x)) ** 2 for x, y in zip(xs, ys, strict=True))
    return a, b, math.sqrt(ssr / (n - 2) / sxx)


def forecast_full(samples: Sequence[tuple[datetime, float]], free_bytes: float, *,
                  now: datetime, window_days: float = 14, min_points: int = 4,
                  min_span_hours: float = 24, drop_bytes: float = math.inf,
                  max_days: float = 365) -> Forecast | None:
    """Days until ``free_bytes`` are used up at the recent growth rate, or None.

    ``samples`` are (time, used bytes), oldest first, and should include the current
    measurement. Only the last ``window_days`` count, and only from the latest drop of
    ``drop_bytes`` or more, so a cleanup starts a new trend. There is no forecast with
    fewer than ``min_points`` over less than ``min_span_hours``, when growth is flat or
    negative, when the slope is indistinguishable from noise (under three standard
    errors), or when the disk would last longer than ``max_days``.
    """
    start = now - timedelta(days=window_days)
    recent = sorted((s for s in samples if start <= s[0] <= now), key=lambda s: s[0])
    recent = after_last_drop(recent, drop_bytes)
    if len(recent) < min_points:
        return None
    t0 = recent[0][0]
    xs = [(t - t0).total_seconds() / DAY for t, _ in recent]
    span_hours = xs[-1] * 24
    if span_hours < min_span_hours:
        return None
    _, slope, stderr = fit_line(xs, [v for _, v in recent])
    if slope <= 0 or slope < 3 * stderr:
        return None
    days = max(0.0, free_bytes) / slope
    if days > max_days:
        return None
    return Forecast(days, slope, len(recent), span_hours, t0)
