"""Maintenance windows: parsing, weekly/nth/last/daily windows, blackouts, DST transitions."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from upkeeper.engine.windows import (
    HostWindows,
    muted,
    parse_blackouts,
    parse_window,
    resolve_local,
    window_state,
)

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize("text, days, start, end, offset, ordinal", [
    ("Sat 22:00-Sun 04:00", {5}, "22:00", "04:00", 1, None),
    ("2nd Tue 20:00-23:30", {1}, "20:00", "23:30", 0, 2),
    ("daily 01:00-05:00", set(range(7)), "01:00", "05:00", 0, None),
    ("last Sun 01:00-03:00", {6}, "01:00", "03:00", 0, -1),
    ("Mon-Fri 22:00-06:00", {0, 1, 2, 3, 4}, "22:00", "06:00", 1, None),
    ("Fri-Mon 23:00-01:00", {4, 5, 6, 0}, "23:00", "01:00", 1, None),
    ("sat,SUN  9:00 - 12:00", {5, 6}, "09:00", "12:00", 0, None),
    ("weekends 00:00-24:00", {5, 6}, "00:00", "00:00", 1, None),
    ("first Monday 02:00-Tue 02:00", {0}, "02:00", "02:00", 1, 1),
    ("Sun 22:00-Sun 23:00", {6}, "22:00", "23:00", 0, None),
])
def test_parse_window_forms(text: str, days: set[int], start: str, end: str, offset: int,
                            ordinal: int | None) -> None:
    w = parse_window(text)
    assert w.weekdays == frozenset(days)
    assert w.start.strftime("%H:%M") == start
    assert w.end.strftime("%H:%M") == end
    assert (w.end_offset, w.ordinal) == (offset, ordinal)


@pytest.mark.parametrize("text, fragment", [
    ("Sat 22:00", "expected DAYS HH:MM-[DAY] HH:MM"),
    ("Caturday 01:00-02:00", "unknown day 'Caturday'"),
    ("daily 25:00-02:00", "invalid time 25:00"),
    ("daily 01:60-02:00", "invalid time 01:60"),
    ("daily 03:00-03:00", "start and end are equal"),
    ("Mon-Fri 22:00-Sat 02:00", "an end day needs a single start day"),
    ("Sat 22:00-Sat 04:00", "ends on the day it starts"),
    ("6th Tue 20:00-21:00", "cannot read days"),
])
def test_parse_window_errors_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_window(text)
    assert fragment in str(err.value)
    assert text in str(err.value)


def test_not_a_string_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        parse_window(42)  # type: ignore[arg-type]


def test_weekly_window_across_midnight() -> None:
    hv = {"maintenance_windows": "Sat 22:00-Sun 04:00"}
    # 2026-11-28 is a Saturday.
    st = window_state(hv, at(2026, 11, 28, 23, 30))
    assert st.inside and st.current_end == at(2026, 11, 29, 4, 0)
    assert st.next_start == at(2026, 12, 5, 22, 0)
    st = window_state(hv, at(2026, 11, 29, 3, 59))
    assert st.inside
    st = window_state(hv, at(2026, 11, 29, 4, 0))
    assert not st.inside and st.current_end is None
    assert st.next_start == at(2026, 12, 5, 22, 0)
    assert "next window 'Sat 22:00-Sun 04:00' opens Sat 2026-12-05 22:00" in st.reason


def test_window_in_client_timezone() -> None:
    hv = {"maintenance_windows": ["daily 22:00-23:00"], "timezone": "Europe/Berlin"}
    # Berlin is UTC+1 in November: 22:00 local is 21:00 UTC.
    assert window_state(hv, at(2026, 11, 26, 21, 30)).inside
    assert not window_state(hv, at(2026, 11, 26, 22, 30)).inside
    assert window_state(hv, at(2026, 11, 26, 12, 0)).next_start == at(2026, 11, 26, 21, 0)


def test_nth_weekday() -> None:
    hv = {"maintenance_windows": "2nd Tue 20:00-23:30"}
    # November 2026: Tuesdays are the 3rd, 10th, 17th, 24th.
    assert not window_state(hv, at(2026, 11, 3, 21, 0)).inside
    st = window_state(hv, at(2026, 11, 3, 21, 0))
    assert st.next_start == at(2026, 11, 10, 20, 0)
    st = window_state(hv, at(2026, 11, 10, 21, 0))
    assert st.inside and st.current_end == at(2026, 11, 10, 23, 30)
    assert st.next_start == at(2026, 12, 8, 20, 0)
    assert not window_state(hv, at(2026, 11, 17, 21, 0)).inside


def test_last_weekday_in_four_and_five_week_months() -> None:
    hv = {"maintenance_windows": "last Sun 01:00-03:00"}
    # November 2026 has four Sundays (last: 29th); May 2026 five (last: 31st).
    assert window_state(hv, at(2026, 11, 29, 2, 0)).inside
    assert not window_state(hv, at(2026, 11, 22, 2, 0)).inside
    assert window_state(hv, at(2026, 5, 1)).next_start == at(2026, 5, 31, 1, 0)
    assert not window_state(hv, at(2026, 5, 24, 2, 0)).inside


def test_fifth_weekday_skips_months_without_one() -> None:
    st = window_state({"maintenance_windows": "5th Fri 01:00-02:00"}, at(2026, 11, 1))
    # November (6..27) and December 2026 (4..25) have four Fridays; January 2027 has
    # five (1, 8, 15, 22, 29).
    assert st.next_start == at(2027, 1, 29, 1, 0)


def test_daily_and_multiple_windows_merge() -> None:
    hv = {"maintenance_windows": ["daily 01:00-03:00", "daily 02:00-05:00"]}
    st = window_state(hv, at(2026, 6, 1, 1, 30))
    assert st.inside and st.current_end == at(2026, 6, 1, 5, 0)
    assert st.next_start == at(2026, 6, 2, 1, 0)


def test_blackout_dates_block_and_clip_windows() -> None:
    hv = {"maintenance_windows": ["daily 22:00-04:00"],
          "blackout_dates": ["2026-12-24..2026-12-26", date(2026, 12, 31)]}
    st = window_state(hv, at(2026, 12, 24, 23, 0))
    assert not st.inside
    assert "blackout 2026-12-24..2026-12-26" in st.reason
    # The window opening on the 26th is cut at midnight; the next is the 27th's.
    assert st.next_start == at(2026, 12, 27, 0, 0)
    # The 23rd's window runs into the blackout: it closes at midnight.
    st = window_state(hv, at(2026, 12, 23, 23, 0))
    assert st.inside and st.current_end == at(2026, 12, 24, 0, 0)
    assert not window_state(hv, at(2026, 12, 31, 23, 0)).inside
    assert window_state(hv, at(2027, 1, 1, 2, 0)).inside


def test_blackout_without_windows_still_blocks() -> None:
    hv = {"blackout_dates": "2026-12-25"}
    assert not window_state(hv, at(2026, 12, 25, 12, 0)).inside
    assert window_state(hv, at(2026, 12, 26, 12, 0)).inside


def test_bad_blackouts() -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        parse_blackouts(["Christmas"])
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_blackouts("2026-12-26..2026-12-24")


def test_no_windows_means_always_allowed() -> None:
    st = window_state({}, at(2026, 1, 1))
    assert st.inside and st.reason == "no maintenance windows defined"
    assert st.current_end is None and st.next_start is None
    assert window_state({"maintenance_windows": []}, at(2026, 1, 1)).inside


def test_naive_now_is_utc() -> None:
    hv = {"maintenance_windows": "daily 01:00-02:00"}
    assert window_state(hv, datetime(2026, 1, 1, 1, 30)).inside


def test_unknown_timezone() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Europe/Lndon'"):
        window_state({"maintenance_windows": "daily 01:00-02:00", "timezone": "Europe/Lndon"},
                     at(2026, 1, 1))


def test_london_spring_forward_start_in_the_gap() -> None:
    # 2026-03-29: at 01:00 GMT London clocks jump to 02:00 BST; 01:30 never happens.
    hv = {"maintenance_windows": "daily 01:30-03:00", "timezone": "Europe/London"}
    st = window_state(hv, at(2026, 3, 29, 0, 59))
    assert not st.inside
    assert st.next_start == at(2026, 3, 29, 1, 0)  # the jump: the clock passes 01:30
    st = window_state(hv, at(2026, 3, 29, 1, 30))
    assert st.inside and st.current_end == at(2026, 3, 29, 2, 0)  # 03:00 BST
    # The day before and after keep their wall-clock times.
    assert window_state(hv, at(2026, 3, 28, 1, 45)).inside  # 01:45 GMT
    assert window_state(hv, at(2026, 3, 30, 0, 45)).inside  # 01:45 BST
    assert not window_state(hv, at(2026, 3, 30, 2, 15)).inside  # 03:15 BST


def test_london_fall_back_ambiguous_times() -> None:
    # 2026-10-25: at 02:00 BST clocks go back to 01:00 GMT; 01:00-02:00 happens twice.
    hv = {"maintenance_windows": "daily 01:30-02:30", "timezone": "Europe/London"}
    st = window_state(hv, at(2026, 10, 25, 0, 0))
    assert st.next_start == at(2026, 10, 25, 0, 30)  # the first 01:30 (BST)
    st = window_state(hv, at(2026, 10, 25, 0, 45))
    assert st.inside and st.current_end == at(2026, 10, 25, 2, 30)  # 02:30 GMT
    assert window_state(hv, at(2026, 10, 25, 1, 45)).inside  # the second 01:45


def test_new_york_spring_forward_and_fall_back() -> None:
    ny = {"timezone": "America/New_York"}
    # 2026-03-08 02:00 EST -> 03:00 EDT: a 02:30 start opens at the jump (07:00 UTC).
    st = window_state({**ny, "maintenance_windows": "Sun 02:30-04:00"}, at(2026, 3, 8, 6, 0))
    assert st.next_start == at(2026, 3, 8, 7, 0)
    st = window_state({**ny, "maintenance_windows": "Sun 02:30-04:00"}, at(2026, 3, 8, 7, 10))
    assert st.inside and st.current_end == at(2026, 3, 8, 8, 0)  # 04:00 EDT
    # 2026-11-01 02:00 EDT -> 01:00 EST: "01:00-02:00" lasts two real hours that night.
    hv = {**ny, "maintenance_windows": "daily 01:00-02:00"}
    st = window_state(hv, at(2026, 11, 1, 5, 0))
    assert st.inside and st.current_end == at(2026, 11, 1, 7, 0)
    assert window_state(hv, at(2026, 11, 1, 6, 30)).inside
    assert not window_state(hv, at(2026, 11, 1, 7, 0)).inside
    # A normal day is one hour long.
    st = window_state(hv, at(2026, 11, 2, 6, 0))
    assert st.inside and st.current_end == at(2026, 11, 2, 7, 0)


def test_resolve_local_gap_and_fold() -> None:
    from zoneinfo import ZoneInfo

    london = ZoneInfo("Europe/London")
    assert resolve_local(datetime(2026, 3, 29, 1, 30), london) == at(2026, 3, 29, 1, 0)
    assert resolve_local(datetime(2026, 10, 25, 1, 30), london) == at(2026, 10, 25, 0, 30)
    assert resolve_local(datetime(2026, 7, 1, 12, 0), london) == at(2026, 7, 1, 11, 0)


def test_upcoming_lists_windows_in_order() -> None:
    hw = HostWindows({"maintenance_windows": ["Sat 22:00-Sun 04:00", "2nd Tue 20:00-23:30"]})
    got = hw.upcoming(at(2026, 11, 26), 3)
    assert [s for s, _e, _w in got] == [at(2026, 11, 28, 22), at(2026, 12, 5, 22),
                                        at(2026, 12, 8, 20)]
    assert got[2][2] == "2nd Tue 20:00-23:30"


def test_muted() -> None:
    hv = {"maintenance_windows": "daily 01:00-02:00", "mute_in_window": True}
    assert muted(hv, at(2026, 1, 1, 1, 30))
    assert not muted(hv, at(2026, 1, 1, 3, 0))
    assert not muted({**hv, "mute_in_window": False}, at(2026, 1, 1, 1, 30))
    # Without windows nothing is muted, and bad settings never mute.
    assert not muted({"mute_in_window": True}, at(2026, 1, 1, 1, 30))
    assert not muted({**hv, "maintenance_windows": "daily 1-2"}, at(2026, 1, 1, 1, 30))
