"""The real runner gates ``patching.apply`` by each host's maintenance window (scripted hosts)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upkeeper.models import Host, Status

from .scripted import run_scripted

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@pytest.mark.slow
def test_apply_runs_inside_its_window_and_is_skipped_outside(tmp_path: Path):
    # The runner reads the real clock: windows are built around it (UTC).
    now = datetime.now(timezone.utc)
    today, tomorrow, later = (DAYS[(now + timedelta(days=d)).weekday()] for d in (0, 1, 2))
    zone = {"timezone": "UTC", "ansible_connection": "scripted"}
    inside = Host("inside", groups=["all"], vars={
        **zone, "maintenance_windows": [f"{today} 00:00-{tomorrow} 23:59"]})
    outside = Host("outside", vars={**zone, "maintenance_windows": [f"{later} 00:00-01:00"]},
                   groups=["all"])
    run, scripted = run_scripted(tmp_path, "name: patch\nhosts: all\nchecks:\n"
                                           "  - patching.apply:\n      reboot: never\n",
                                 [inside, outside])
    by_host = {r.host: r for r in run.results}
    assert by_host["inside"].status is Status.OK, by_host["inside"].summary
    assert by_host["inside"].changed and scripted["inside"].installed
    assert by_host["outside"].status is Status.SKIPPED
    assert "outside maintenance window" in by_host["outside"].summary
    assert "outside" not in scripted or not scripted["outside"].installed
