"""Availability from the status timeline and incidents from first seen to recovered,
including incidents that span the edges of the period, and month boundaries in the
client's timezone."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.monthly.helpers import at
from upkeeper.models import Status
from upkeeper.monthly.period import PeriodError, client_timezone, month_period, range_period
from upkeeper.monthly.timeline import Point, availability, incidents

OK, WARN, CRIT, SKIPPED = Status.OK, Status.WARN, Status.CRIT, Status.SKIPPED
DAY = timedelta(days=1)
NOV = month_period("2026-11")


def pts(*items: tuple[str, Status]) -> list[Point]:
    return [Point(at(t), s, f"{s.value} at {t}") for t, s in items]


def test_availability_weights_time_not_results() -> None:
    points = pts(("2026-10-31 00:00", OK), ("2026-11-11 00:00", CRIT),
                 ("2026-11-11 12:00", OK), ("2026-11-21 00:00", WARN),
                 ("2026-11-21 06:00", OK))
    a = availability(points, NOV.start, NOV.end, max_gap=timedelta(days=40))
    assert a.checked == timedelta(days=30)
    assert a.ok == timedelta(days=30) - timedelta(hours=18)
    assert a.share == pytest.approx(1 - 18 / 720)


def test_gaps_beyond_the_allowed_age_are_not_checked_time() -> None:
    points = pts(("2026-11-01 00:00", OK), ("2026-11-20 00:00", CRIT))
    a = availability(points, NOV.start, NOV.end, max_gap=DAY)
    assert a.checked == 2 * DAY and a.ok == DAY and a.share == 0.5
    assert a.coverage == pytest.approx(2 / 30)
    skipped = availability(pts(("2026-11-01 00:00", SKIPPED)), NOV.start, NOV.end, DAY)
    assert skipped.share is None and skipped.checked == timedelta(0)


def test_incidents_across_both_month_edges() -> None:
    points = pts(("2026-10-30 02:00", OK), ("2026-10-31 02:00", WARN),
                 ("2026-11-01 02:00", CRIT), ("2026-11-02 02:00", OK),
                 ("2026-11-10 02:00", WARN), ("2026-11-10 03:00", OK),
                 ("2026-11-29 02:00", CRIT), ("2026-11-30 02:00", CRIT),
                 ("2026-12-01 02:00", OK))
    found = incidents(points, NOV.start, NOV.end, host="web1", check="disk.usage",
                      name="disk")
    assert [(i.start, i.end, i.worst) for i in found] == [
        (at("2026-10-31 02:00"), at("2026-11-02 02:00"), CRIT),  # began in October
        (at("2026-11-10 02:00"), at("2026-11-10 03:00"), WARN),
        (at("2026-11-29 02:00"), None, CRIT),  # recovered only in December
    ]
    assert found[0].duration(NOV.end) == 2 * DAY
    assert found[2].open and found[2].duration(NOV.end) == timedelta(hours=46)
    assert found[0].summary == "CRIT at 2026-11-01 02:00" and found[2].results == 2
    # An incident that ended before the month is not this month's.
    october = incidents(points[:4], at("2026-11-02 03:00"), NOV.end, host="web1",
                        check="disk.usage", name="disk")
    assert october == []


def test_month_in_client_timezone_and_dst() -> None:
    berlin = month_period("2026-11", "Europe/Berlin")
    assert berlin.start == at("2026-10-31 23:00") and berlin.end == at("2026-11-30 23:00")
    october = month_period("2026-10", "Europe/Berlin")  # 31 days and one extra hour
    assert october.length == timedelta(days=31, hours=1)
    assert NOV.start == at("2026-11-01 00:00") and NOV.label == "November 2026"
    december = month_period("2026-12")
    assert december.end == at("2027-01-01 00:00")
    span = range_period("2026-11-03", "2026-11-05", "UTC")
    assert span.start == at("2026-11-03 00:00") and span.end == at("2026-11-06 00:00")
    for bad in ("2026-13", "11-2026", "2026/11"):
        with pytest.raises(PeriodError, match="YYYY-MM"):
            month_period(bad)
    with pytest.raises(PeriodError, match="unknown timezone"):
        month_period("2026-11", "Mars/Olympus")
    with pytest.raises(PeriodError, match="before --since"):
        range_period("2026-11-05", "2026-11-03")
    assert client_timezone([{"timezone": "Europe/Berlin"}, {"timezone": "Europe/Berlin"},
                            {"timezone": "UTC"}, {"timezone": "bogus"}]) == "Europe/Berlin"
    assert client_timezone([{}]) == "UTC"
