"""The shared vocabulary: durations, sizes, thresholds and findings mean one thing everywhere."""

from __future__ import annotations

import warnings
from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError, model_validator

from upkeeper import Status
from upkeeper.measures import (
    Duration,
    Findings,
    Size,
    UpkeeperDeprecationWarning,
    duration_field_type,
    format_duration,
    format_size,
    grade,
    parse_duration,
    parse_size,
    renamed_params,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("90m", 5400), ("26h", 93600), ("2d", 172800), ("1d12h", 129600),
    ("1w", 604800), ("2 hours", 7200), ("1h 30m", 5400), ("1.5h", 5400), ("0s", 0),
    (" 5 min ", 300), ("3 days", 259200)])
def test_durations_with_units(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["26", 26, 1.5, "h", "5 parsecs", "-5m", "5m junk", "", None,
                                 True, "1e9"])
def test_bare_numbers_and_junk_are_refused(bad):
    with pytest.raises(ValueError, match=r"duration|unit"):
        parse_duration(bad)


def test_absurd_durations_are_a_value_error_not_a_crash():
    for bad in ("99999999999d", "1" * 400 + "s"):
        with pytest.raises(ValueError, match="too long"):
            parse_duration(bad)
    with pytest.raises(ValueError, match="too long"):
        parse_duration(10**30, bare_unit="s")
    with pytest.raises(ValidationError, match="too long"):
        P(every="99999999999w")


def test_bare_number_in_a_declared_unit():
    assert parse_duration(26, bare_unit="h") == timedelta(hours=26)
    assert parse_duration("90", bare_unit="s") == timedelta(seconds=90)
    with pytest.raises(ValueError):
        parse_duration(-1, bare_unit="s")


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (45, "45 s"), (720, "12 min"), (11520, "3 h 12 min"), (7200, "2 h"),
    (367200, "4 d 6 h"), (172800, "2 d"), (-90, "1 min in the future")])
def test_format_duration_human_units(seconds, text):
    assert format_duration(timedelta(seconds=seconds)) == text


@pytest.mark.parametrize(("text", "size"), [
    (1048576, 1048576), ("500MiB", 500 * 2**20), ("2G", 2 * 2**30), ("1.5 TiB", int(1.5 * 2**40)),
    ("10k", 10240), ("10KB", 10240), ("7", 7), ("7B", 7)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["ten", "5 XB", -1, "iB", True, float("nan"), "9" * 400 + "P",
                                 float("inf")])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(bad)


def test_format_size():
    assert format_size(512) == "512 B"
    assert format_size(1536 * 2**20) == "1.5 GiB"


def test_one_comparison_rule_at_or_past():
    assert grade(84.9, warn=85, crit=95) is Status.OK
    assert grade(85, warn=85, crit=95) is Status.WARN
    assert grade(95, warn=85, crit=95) is Status.CRIT
    assert grade(10, warn=10, crit=5, higher_is_worse=False) is Status.WARN
    assert grade(5, warn=10, crit=5, higher_is_worse=False) is Status.CRIT
    assert grade(50) is Status.OK
    assert grade(None, warn=1) is Status.UNKNOWN
    assert grade(float("nan"), warn=1) is Status.UNKNOWN


def test_findings_combine_worst_first():
    f = Findings()
    assert f.status is Status.OK and f.summary("all good") == "all good"
    f.add(Status.OK, "sda fine")
    f.add(Status.WARN, "sdb warm")
    f.add(Status.CRIT, "sdc failing")
    assert f.status is Status.CRIT
    assert f.summary() == "sdc failing; sdb warm"
    for n in range(5):
        f.add(Status.WARN, f"w{n}")
    assert f.summary(limit=2).endswith("(+5 more)")


class P(BaseModel):
    every: Duration
    max_age: duration_field_type("h") = timedelta(hours=26)  # type: ignore[valid-type]
    limit: Size = 0


def test_pydantic_types():
    p = P(every="5m", max_age="2d", limit="1G")
    assert p.every == timedelta(minutes=5) and p.limit == 2**30
    assert p.model_dump(mode="json")["every"] == "5 min"
    with pytest.raises(ValidationError, match="has no unit"):
        P(every=5)
    with pytest.warns(UpkeeperDeprecationWarning,
                      match="param 'max_age': duration 26 without a unit is read as 26h"):
        assert P(every="1h", max_age=26).max_age == timedelta(hours=26)
    with pytest.warns(UpkeeperDeprecationWarning, match="duration 2.5 without a unit is read "
                                                        "as 2.5h; write '2.5h'"):
        assert P(every="1h", max_age="2.5").max_age == timedelta(hours=2.5)


class Renamed(BaseModel):
    warn_age: int = 1
    _old = model_validator(mode="before")(renamed_params({"max_age": "warn_age"}, since="1.1",
                                                          owner="demo.check"))


def test_old_param_names_are_accepted_with_a_warning():
    with pytest.warns(UpkeeperDeprecationWarning, match="'max_age' is deprecated since API 1.1"):
        assert Renamed(max_age=5).warn_age == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Renamed(warn_age=6).warn_age == 6
    with pytest.raises(ValidationError, match="give only 'warn_age'"):
        Renamed(max_age=5, warn_age=6)
