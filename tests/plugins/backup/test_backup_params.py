"""The backup params speak the shared vocabulary: warn_/crit_ names, durations with units
(bare numbers still hours, with a warning), sizes, and one threshold rule (at or past)."""

from __future__ import annotations

import importlib
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from upkeeper import Status
from upkeeper.measures import UpkeeperDeprecationWarning
from upkeeper_backup.borg import BorgParams
from upkeeper_backup.common import judge_age, judge_shrink
from upkeeper_backup.files import FilesParams
from upkeeper_backup.parsers import Snapshot
from upkeeper_backup.restic import ResticParams
from upkeeper_backup.wbadmin import WsbParams

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
RESTIC = {"repository": "/srv/restic", "password": "pw"}


def files(**params: Any) -> FilesParams:
    return FilesParams(path="/var/backups/*.gz", **params)


def quiet(factory: Any, **params: Any) -> Any:
    """Build params and fail on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return factory(**params)


def test_the_private_duration_module_is_gone() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("upkeeper_backup.durations")


def test_durations_with_units_and_defaults() -> None:
    p = quiet(files)
    assert p.warn_age == timedelta(hours=26) and p.crit_age == timedelta(hours=50)
    p = quiet(files, warn_age="1d12h", crit_age="2 days")
    assert p.warn_age == timedelta(hours=36) and p.crit_age == timedelta(days=2)
    r = quiet(ResticParams, **RESTIC, integrity_every="7d", restore_every="1w")
    assert r.integrity_every == r.restore_every == timedelta(days=7)
    assert quiet(BorgParams, repository="/r", max_duration="10m").max_duration == \
        timedelta(minutes=10)


@pytest.mark.parametrize("bad", ["soon", "26x", "-3h", True, "1e9"])
def test_junk_durations_are_refused(bad: Any) -> None:
    with pytest.raises(ValidationError, match="warn_age"):
        files(warn_age=bad)


@pytest.mark.parametrize(("factory", "base", "field"), [
    (files, {}, "warn_age"),
    (files, {"warn_age": "1h"}, "crit_age"),
    (ResticParams, RESTIC, "integrity_every"),
    (ResticParams, RESTIC, "restore_every"),
    (BorgParams, {"repository": "/r"}, "max_duration"),
])
def test_bare_numbers_are_still_hours_with_a_warning(factory: Any, base: dict[str, Any],
                                                     field: str) -> None:
    # Before API 1.1 a bare number was hours, silently; "40" as minutes or seconds would
    # be the guess of someone used to borg's --max-duration or to cron.
    with pytest.warns(UpkeeperDeprecationWarning,
                      match=rf"param '{field}': duration 40 without a unit is read as 40h"):
        p = factory(**base, **{field: 40})
    assert getattr(p, field) == timedelta(hours=40)
    with pytest.warns(UpkeeperDeprecationWarning, match="read as 1.5h"):
        assert getattr(factory(**base, **{field: "1.5"}), field) == timedelta(hours=1.5)


def test_old_param_names_still_work_with_a_warning() -> None:
    with pytest.warns(UpkeeperDeprecationWarning, match="'max_age' is deprecated.*'warn_age'"):
        assert files(max_age="12h").warn_age == timedelta(hours=12)
    with pytest.warns(UpkeeperDeprecationWarning,
                      match="'max_shrink_pct' is deprecated.*'warn_shrink_pct'"):
        assert files(max_shrink_pct=20).warn_shrink_pct == 20
    for factory, base in ((ResticParams, RESTIC), (BorgParams, {"repository": "/r"}),
                          (WsbParams, {})):
        with pytest.warns(UpkeeperDeprecationWarning, match="'max_age'"):
            assert factory(**base, max_age="30h").warn_age == timedelta(hours=30)
    with pytest.raises(ValidationError, match="give only 'warn_age'"):
        files(max_age="12h", warn_age="12h")


def test_crit_age_not_shorter_than_warn_age() -> None:
    with pytest.raises(ValidationError, match="crit_age must not be shorter than warn_age"):
        files(warn_age="2d", crit_age="1d")


def test_sizes() -> None:
    p = quiet(files, min_size="1.5 KiB")
    assert p.min_size == 1536
    assert quiet(ResticParams, **RESTIC, restore_max_file_size="2G").restore_max_file_size \
        == 2 * 1024**3
    with pytest.raises(ValidationError, match="not a size"):
        files(min_size="lots")


def test_age_at_the_threshold_is_that_level() -> None:
    # The one rule: a value at or past a threshold has that status (was: strictly past).
    p = quiet(files, warn_age="26h", crit_age="50h")
    just_under = judge_age("b", NOW - timedelta(hours=26) + timedelta(seconds=1), NOW, p)
    assert just_under.status is Status.OK
    at_warn = judge_age("b", NOW - timedelta(hours=26), NOW, p)
    assert at_warn.status is Status.WARN and at_warn.text == "b is 26 h old (warn_age is 26 h)"
    at_crit = judge_age("b", NOW - timedelta(hours=50), NOW, p)
    assert at_crit.status is Status.CRIT and at_crit.text.endswith("(crit_age is 2 d 2 h)")
    no_crit = quiet(files, crit_age=None)
    assert judge_age("b", NOW - timedelta(days=30), NOW, no_crit).status is Status.WARN


def test_future_dated_backup_reads_as_a_clock_problem() -> None:
    p = quiet(files)
    skew = judge_age("b", NOW + timedelta(hours=2), NOW, p)
    assert skew.status is Status.WARN
    assert skew.text == "b is dated 2 h in the future: check the clocks"
    assert judge_age("b", NOW + timedelta(minutes=5), NOW, p).text == "b is 0 s old"


def test_shrink_at_the_threshold_warns() -> None:
    prev = Snapshot("a", NOW, size=1000, files=100)
    at = judge_shrink(Snapshot("b", NOW, size=500, files=100), prev, 50)
    assert at is not None and at.status is Status.WARN
    assert "size 1000 B -> 500 B (-50%)" in at.text
    assert judge_shrink(Snapshot("b", NOW, size=501, files=100), prev, 50) is None
    # 0 means any drop; an unchanged or growing backup is never a shrink.
    assert judge_shrink(Snapshot("b", NOW, size=999, files=100), prev, 0) is not None
    assert judge_shrink(Snapshot("b", NOW, size=1000, files=100), prev, 0) is None
    assert judge_shrink(Snapshot("b", NOW, size=2000, files=200), prev, 0) is None


def test_params_serialise_in_human_units() -> None:
    dumped = quiet(ResticParams, **RESTIC, integrity_every="36h").model_dump(mode="json")
    assert dumped["warn_age"] == "26 h" and dumped["crit_age"] == "2 d 2 h"
    assert dumped["integrity_every"] == "36 h" and "max_age" not in dumped
