"""Playbook schedule specs: validation with file:line, due times across DST, jitter bounds."""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta, timezone
from itertools import islice, pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from upkeeper.engine.playbook import PlaybookError, load_playbook
from upkeeper.measures import UpkeeperDeprecationWarning
from upkeeper.schedule.specs import (
    ScheduleError,
    duration_seconds,
    iter_slots,
    jitter_offset,
    next_due,
    parse_schedules,
    parse_spec,
    slots_between,
    validate_schedule,
)

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spec(**raw: Any) -> Any:
    raw.setdefault("timezone", "UTC")
    return parse_spec(raw, 0)


def first(s: Any, after: datetime, n: int) -> list[datetime]:
    return list(islice(iter_slots(s, after), n))


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("2 hours", 7200), ("1d", 86400),
    ("0", 0), (0, 0), ("1.5h", 5400), ("10 minutes 5 seconds", 605), ("1w", 604800),
])
def test_durations_read_by_the_shared_parser(text: Any, seconds: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert duration_seconds(text, "jitter") == seconds


@pytest.mark.parametrize("text, seconds", [(90, 90), ("45", 45), (2.5, 2.5)])
def test_bare_numbers_are_still_seconds_with_a_warning(text: Any, seconds: float) -> None:
    # One rule for every duration in upkeeper: units required. A bare number kept its old
    # meaning here (seconds) for one minor version, and says so.
    with pytest.warns(UpkeeperDeprecationWarning,
                      match=rf"jitter: duration {text} without a unit is read as {text}s"):
        assert duration_seconds(text, "jitter") == seconds


@pytest.mark.parametrize("bad", ["soon", "5 fortnights", "m5", -1, True, "5m garbage",
                                 float("nan"), "99999999999w", "4000d"])
def test_duration_rejects(bad: Any) -> None:
    with pytest.raises(ScheduleError, match=r"^catch_up\b"):
        duration_seconds(bad, "catch_up")


def test_a_bare_jitter_in_a_playbook_still_loads_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: x\nschedule: {every: hour, jitter: 600}\nchecks: "
                    "[system.uptime]\n")
    with pytest.warns(UpkeeperDeprecationWarning, match="jitter: duration 600 without a "
                                                        "unit is read as 600s"):
        [s] = parse_schedules(load_playbook(path))
    assert s.jitter == 600


PLAYBOOK = """\
name: nightly
hosts: all
schedule:
  - every: day
    at: "02:00"
    timezone: Europe/London
  - every: 10 minutes
    {bad}
checks:
  - system.uptime
"""


@pytest.mark.parametrize("bad, line, fragment", [
    ('at: "02:00"', 8, "expected ':SS' for minute schedules"),
    ("jitter: 20m", 8, "must be shorter than the interval (600s)"),
    ("timezone: Mars/Olympus", 8, "unknown timezone 'Mars/Olympus'"),
    ("cron: '* * * * *'", 8, "unknown schedule key 'cron'"),
    ("catch_up: later", 8, "catch_up: not a duration: 'later'"),
])
def test_errors_carry_file_and_line(tmp_path: Path, bad: str, line: int,
                                    fragment: str) -> None:
    path = tmp_path / "nightly.yml"
    path.write_text(PLAYBOOK.format(bad=bad))
    pb = load_playbook(path)
    with pytest.raises(PlaybookError) as err:
        parse_schedules(pb)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert fragment in msg
    assert validate_schedule(pb) == [msg]


def test_every_error_points_at_the_key(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: x\nschedule:\n  every: fortnight\nchecks: [system.uptime]\n")
    with pytest.raises(PlaybookError) as err:
        parse_schedules(load_playbook(path))
    assert str(err.value).startswith(f"{path}:3:")
    assert "unknown unit 'fortnight'" in str(err.value)


def test_missing_every_and_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "p.yml"
    path.write_text("name: x\nchecks: [system.uptime]\nschedule:\n  at: '02:00'\n")
    with pytest.raises(PlaybookError, match=r"p.yml:3:.*needs 'every'"):
        parse_schedules(load_playbook(path))
    path.write_text("name: x\nchecks: [system.uptime]\nschedule: nightly\n")
    with pytest.raises(PlaybookError, match=r"p.yml:3:.*a schedule is a mapping"):
        parse_schedules(load_playbook(path))


def test_valid_schedules_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")  # no timezone key: the machine's zone
    path = tmp_path / "p.yml"
    path.write_text(PLAYBOOK.format(bad='jitter: "2m"'))
    specs = parse_schedules(load_playbook(path))
    assert [(s.index, s.unit, s.interval, s.timezone) for s in specs] == [
        (0, "days", 1, "Europe/London"), (1, "minutes", 10, "UTC")]
    assert specs[1].jitter == 120
    assert specs[0].describe() == "every day at 02:00:00 Europe/London"
    path.write_text("name: x\nchecks: [system.uptime]\n")
    assert parse_schedules(load_playbook(path)) == []


@pytest.mark.parametrize("raw, fragment", [
    ({"every": "2 mondays"}, "weekdays cannot take a count"),
    ({"every": "0 minutes"}, "at least 1"),
    ({"every": "10 seconds", "at": ":05"}, "cannot be used with every N seconds"),
    ({"every": "hour", "at": "02:00:00"}, "'MM:SS' or ':MM'"),
    ({"every": "day", "at": "25:00"}, "not a valid time"),
    ({"every": 5}, "expected 'N seconds"),
])
def test_spec_errors(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ScheduleError, match=fragment):
        parse_spec(raw, 0)


def test_daily_keeps_wall_clock_across_london_dst() -> None:
    s = spec(every="day", at="02:00", timezone="Europe/London")
    got = first(s, at(2026, 3, 27), 4)
    # GMT until the 29th, then BST (UTC+1).
    assert got == [at(2026, 3, 27, 2), at(2026, 3, 28, 2), at(2026, 3, 29, 1),
                   at(2026, 3, 30, 1)]


def test_daily_in_the_gap_runs_at_the_jump_and_once_when_repeated() -> None:
    s = spec(every="day", at="01:30", timezone="Europe/London")
    assert first(s, at(2026, 3, 28, 12), 1) == [at(2026, 3, 29, 1, 0)]
    # Clocks going back repeat 01:30: the job runs once, at the first one.
    got = first(s, at(2026, 10, 24, 12), 2)
    assert got == [at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30)]


def test_hourly_stays_hourly_in_real_time_across_fall_back() -> None:
    s = spec(every="hour", at=":30", timezone="America/New_York")
    got = first(s, at(2026, 11, 1, 3), 6)
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(got))
    ny = ZoneInfo("America/New_York")
    assert all(g.astimezone(ny).minute == 30 for g in got)


def test_hours_follow_local_wall_clock() -> None:
    s = spec(every="6 hours", timezone="Asia/Kolkata")
    kolkata = ZoneInfo("Asia/Kolkata")
    got = [g.astimezone(kolkata).hour for g in first(s, at(2026, 11, 26), 4)]
    assert sorted(got) == [0, 6, 12, 18]


def test_seconds_and_minutes_are_epoch_aligned() -> None:
    s = spec(every="10 seconds")
    assert next_due(s, at(2026, 1, 1, 0, 0, 5)) == at(2026, 1, 1, 0, 0, 10)
    assert next_due(s, at(2026, 1, 1, 0, 0, 10)) == at(2026, 1, 1, 0, 0, 20)
    m = spec(every="15 minutes", at=":30")
    assert next_due(m, at(2026, 1, 1, 0, 7)) == at(2026, 1, 1, 0, 15, 30)


def test_weekday_schedule() -> None:
    s = spec(every="monday", at="02:00", timezone="Asia/Kolkata")
    # Monday 2026-11-30 02:00 IST is Sunday 20:30 UTC.
    assert next_due(s, at(2026, 11, 26)) == at(2026, 11, 29, 20, 30)
    assert next_due(s, at(2026, 11, 29, 20, 30)) == at(2026, 12, 6, 20, 30)


def test_every_n_days_is_stable_regardless_of_start() -> None:
    s = spec(every="3 days", at="04:00")
    a = first(s, at(2026, 1, 1), 5)
    b = first(s, at(2026, 1, 2, 5), 4)
    assert a[1:] == b
    assert all(y - x == timedelta(days=3) for x, y in pairwise(a))


def test_slots_between_counts_long_outages_without_walking_them() -> None:
    s = spec(every="1 seconds")
    kept, total = slots_between(s, at(2026, 1, 1), at(2026, 1, 31), 10)
    assert total == 30 * 86400
    assert kept[-1] == at(2026, 1, 31) and len(kept) == 10
    d = spec(every="day", at="01:00")
    kept, total = slots_between(d, at(2026, 1, 1, 2), at(2026, 1, 5, 2), 10)
    assert total == 4 and kept[0] == at(2026, 1, 2, 1)


def test_jitter_bounds_and_spread() -> None:
    s = spec(every="day", at="02:00", jitter="5m")
    due = at(2026, 11, 27, 2)
    offsets = [jitter_offset(s, f"client-{i}.yml", due) for i in range(300)]
    assert all(timedelta(0) <= o < timedelta(minutes=5) for o in offsets)
    assert len({o for o in offsets}) > 250
    assert min(offsets) < timedelta(seconds=30) and max(offsets) > timedelta(seconds=270)
    # Stable: a restarted daemon plans the same start.
    assert jitter_offset(s, "client-7.yml", due) == offsets[7]
    assert jitter_offset(spec(every="day"), "x", due) == timedelta(0)
