"""The days-to-full forecast on synthetic histories."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from upkeeper_disk.forecast import after_last_drop, fit_line, forecast_full

GB = 1024**3
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def series(days: int, per_day: int, start: float, growth_per_day: float,
           noise: float = 0.0, seed: int = 1) -> list[tuple[datetime, float]]:
    rng = random.Random(seed)
    out = []
    for i in range(days * per_day + 1):
        t = NOW - timedelta(days=days) + timedelta(days=i / per_day)
        out.append((t, start + growth_per_day * i / per_day + rng.uniform(-noise, noise)))
    return out


def test_fit_line_exact() -> None:
    a, b, err = fit_line([0, 1, 2, 3], [1, 3, 5, 7])
    assert (round(a, 9), round(b, 9), round(err, 9)) == (1, 2, 0)


def test_linear_fill_gives_free_over_growth() -> None:
    fc = forecast_full(series(7, 4, 50 * GB, 1 * GB), 5 * GB, now=NOW)
    assert fc is not None
    assert abs(fc.days_to_full - 5) < 0.01
    assert abs(fc.growth_bytes_per_day - GB) < 1e3
    assert fc.points == 29


def test_only_the_window_counts() -> None:
    # Fast growth long ago, slow growth in the last 14 days.
    old = series(30, 1, 10 * GB, 5 * GB)[:15]
    recent = [(t, v) for t, v in series(14, 1, 200 * GB, 0.5 * GB)]
    fc = forecast_full(old + recent, 10 * GB, now=NOW, window_days=14)
    assert fc is not None and abs(fc.days_to_full - 20) < 0.5


def test_flat_and_shrinking_give_no_forecast() -> None:
    assert forecast_full(series(10, 2, 50 * GB, 0), 5 * GB, now=NOW) is None
    assert forecast_full(series(10, 2, 50 * GB, -GB), 5 * GB, now=NOW) is None
    # Noise around a flat line must not turn into a bogus trend: over 100 noisy series
    # almost none yields a forecast, and none that would alarm.
    found = [fc for seed in range(100)
             if (fc := forecast_full(series(10, 6, 50 * GB, 0, noise=GB, seed=seed), 5 * GB,
                                     now=NOW)) is not None]
    assert len(found) <= 2
    assert all(fc.days_to_full > 30 for fc in found)


def test_noisy_growth_still_forecasts() -> None:
    fc = forecast_full(series(10, 6, 50 * GB, 2 * GB, noise=GB, seed=3), 20 * GB, now=NOW)
    assert fc is not None and 8 < fc.days_to_full < 12


def test_needs_four_points_over_a_day() -> None:
    assert forecast_full(series(0, 1, 50 * GB, GB)[:1] * 3, 5 * GB, now=NOW) is None
    three = series(2, 1, 50 * GB, GB)
    assert len(three) == 3 and forecast_full(three, 5 * GB, now=NOW) is None
    # Many points within a few hours: too short a span.
    burst = [(NOW - timedelta(hours=h), 50 * GB - h * GB) for h in range(10, -1, -1)]
    assert forecast_full(burst, 5 * GB, now=NOW) is None
    assert forecast_full(burst, 5 * GB, now=NOW, min_span_hours=6) is not None


def test_cleanup_drop_restarts_the_trend() -> None:
    before = series(10, 1, 40 * GB, 3 * GB)[:6]       # steep growth, then a cleanup
    after = [(t, v) for t, v in series(4, 1, 20 * GB, 1 * GB)]
    samples = before + after
    assert after_last_drop(samples, 5 * GB) == after
    fc = forecast_full(samples, 8 * GB, now=NOW, drop_bytes=5 * GB)
    assert fc is not None and abs(fc.days_to_full - 8) < 0.01 and fc.points == 5
    # Without drop detection the fit spans the cleanup and is wrong (negative: none).
    assert forecast_full(samples, 8 * GB, now=NOW) is None


def test_forecasts_beyond_max_days_are_dropped() -> None:
    slow = series(10, 1, 50 * GB, 0.01 * GB)
    assert forecast_full(slow, 500 * GB, now=NOW) is None
    assert forecast_full(slow, 500 * GB, now=NOW, max_days=100_000) is not None
