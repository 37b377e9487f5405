"""disk.usage through FakeTransport and a seeded in-memory history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from upkeeper import Result, Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_disk.usage import INODES_MARK, MOUNTS_MARK, DiskUsage

from .helpers import data

GB = 1024**3
KB = 1024
NOW = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def combined(blocks: str, inodes: str = "", mounts: str = "") -> str:
    return f"{blocks}{INODES_MARK}\n{inodes}{MOUNTS_MARK}\n{mounts}"


def gnu_df(rows: list[tuple[str, str, str, int, int, int]]) -> str:
    """GNU ``df -PkT`` text for (device, type, mount, size, used, avail) in bytes."""
    lines = ["Filesystem     Type 1024-blocks      Used Available Capacity Mounted on"]
    for dev, fstype, mount, size, used, avail in rows:
        pct = -(-used * 100 // (used + avail)) if used + avail else 0
        lines.append(f"{dev} {fstype} {size // KB} {used // KB} {avail // KB} {pct}% {mount}")
    return "\n".join(lines) + "\n"


def fake(output: str, stderr: str = "", code: int = 0) -> FakeTransport:
    return FakeTransport(make_host("web01"), {"df -PkT": (code, output, stderr)})


def seed(hist: History, mount: str, points: list[tuple[datetime, float]],
         host: str = "web01") -> None:
    for i, (t, used) in enumerate(points):
        hist.add_result(f"run{i}", Result(Status.OK, "seeded", metrics={
            f"{mount}:used_bytes": used}, host=host, check="disk.usage", started=t))


def daily(days: int, start: float, per_day: float) -> list[tuple[datetime, float]]:
    return [(NOW - timedelta(days=days - i), start + per_day * i) for i in range(days)]


def one(results: list[Result]) -> Result:
    assert len(results) == 1
    return results[0]


def test_captured_df_one_result_worst_mount_first() -> None:
    out = combined(data("gnu_df_PkT.txt"), data("gnu_df_Pi.txt"), data("proc_mounts.txt"))
    tr = fake(out)
    res = one(run_check(DiskUsage, {}, transport=tr))
    assert tr.commands and "LC_ALL=C" in tr.commands[0] and "df -Pi" in tr.commands[0]
    assert len(tr.calls) == 1
    assert res.status is Status.CRIT
    assert res.summary.startswith("/tmp/dk/ext4 100% used, 0 B free")
    mounts = [m["mount"] for m in res.details["mounts"]]
    assert mounts[0] == "/tmp/dk/ext4"
    assert set(mounts) == {"/", "/tmp/dk/ext4", "/tmp/dk/ro-ext4", "/tmp/dk/Client Data"}
    assert {"/dev", "/dev/shm", "/tmp/dk/full", "/tmp/dk/mnt with space"} <= set(
        res.details["excluded"])
    assert res.metrics["/tmp/dk/Client Data:used_bytes"] == 14 * KB
    assert res.metrics["/:size_bytes"] == 264212084 * KB
    assert res.metrics["/:used_pct"] == 22
    assert res.metrics["/:inodes_used_pct"] == 3
    ro = next(m for m in res.details["mounts"] if m["mount"] == "/tmp/dk/ro-ext4")
    assert ro["readonly"] is True
    json.dumps(res.to_dict())


def test_pseudo_filesystems_can_be_included_by_type() -> None:
    out = combined(data("gnu_df_PkT.txt"), data("gnu_df_Pi.txt"), data("proc_mounts.txt"))
    res = one(run_check(DiskUsage, {"include_fstypes": ["tmpfs"],
                                    "include_mounts": ["/tmp/dk/*"]}, transport=fake(out)))
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert set(mounts) == {"/tmp/dk/full", "/tmp/dk/lvmlike", "/tmp/dk/ro",
                           "/tmp/dk/mnt with space"}
    assert res.status is Status.CRIT
    assert res.summary == "/tmp/dk/full 100% used, 0 B free, inodes 100% used"
    assert mounts["/tmp/dk/full"]["reasons"] == [
        "space CRIT: 100% used, 0 B free (limit 95%)",
        "inodes CRIT: 100% used (limit 95%)"]


def test_exclude_by_type_and_glob() -> None:
    out = combined(data("gnu_df_PkT.txt"), data("gnu_df_Pi.txt"), data("proc_mounts.txt"))
    res = one(run_check(DiskUsage, {"exclude_mounts": ["/tmp/dk/e*"],
                                    "exclude_fstypes": ["EXT4"]}, transport=fake(out)))
    assert res.status is Status.UNKNOWN
    assert "no filesystems left" in res.summary
    res = one(run_check(DiskUsage, {"exclude_mounts": ["/tmp/dk/e*"]}, transport=fake(out)))
    assert res.status is Status.OK
    assert res.summary == "3 filesystems OK; fullest / 22% used, 79.4 GiB free"


def test_busybox_without_types_gets_them_from_proc_mounts() -> None:
    out = combined(data("busybox_df_k_wrapped.txt"), data("busybox_df_i_wrapped.txt"),
                   data("proc_mounts.txt"))
    res = one(run_check(DiskUsage, {}, transport=fake(out)))
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert set(mounts) == {"/", "/tmp/dk/ext4", "/tmp/dk/ro-ext4", "/tmp/dk/Client Data"}
    assert mounts["/tmp/dk/Client Data"]["fstype"] == "ext4"


def test_rhel6_var_inodes_and_space() -> None:
    res = one(run_check(DiskUsage, {}, transport=fake(combined(
        data("rhel6_df_kT_wrapped.txt"), data("rhel6_df_Pi.txt")))))
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert res.status is Status.CRIT
    assert res.summary.startswith("/home 100% used, 0 B free")
    assert "/var CRIT" in res.summary and "/ WARN" in res.summary
    assert mounts["/var"]["reasons"] == ["space WARN: 93% used, 1.4 GiB free (limit 85%)",
                                         "inodes CRIT: 98% used (limit 95%)"]
    # iso9660 media is always 100% and never an alarm; CIFS shares are checked.
    assert "/media/CentOS_6.10_Final" in res.details["excluded"]
    assert mounts["/mnt/nas share"]["status"] == "OK"


def test_free_space_thresholds_spare_big_disks() -> None:
    rows = [("/dev/md0", "xfs", "/srv/big", 8 * 1024 * GB, int(7.4 * 1024 * GB),
             int(0.6 * 1024 * GB)),
            ("/dev/sda2", "ext4", "/", 40 * GB, int(37 * GB), int(3 * GB))]
    params = {"warn_pct": 90, "crit_pct": 98, "warn_free_gb": 100, "crit_free_gb": 2}
    res = one(run_check(DiskUsage, params, transport=fake(combined(gnu_df(rows)))))
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert mounts["/srv/big"]["used_pct"] == 93 and mounts["/srv/big"]["status"] == "OK"
    assert mounts["/"]["status"] == "WARN"
    assert mounts["/"]["reasons"] == ["space WARN: 93% used, 3.0 GiB free "
                                      "(limit 90% and 100.0 GiB free)"]
    assert res.status is Status.WARN and res.summary == "/ 93% used, 3.0 GiB free"
    # Free space alone (percent disabled) alarms on the big disk too.
    res = one(run_check(DiskUsage, {"warn_pct": None, "warn_free_gb": 1000},
                        transport=fake(combined(gnu_df(rows)))))
    assert {m["mount"] for m in res.details["mounts"] if m["status"] == "WARN"} == {
        "/srv/big", "/"}


def test_per_mount_overrides_first_match_wins() -> None:
    rows = [("/dev/sdb1", "ext4", "/var/lib/postgresql", 100 * GB, 82 * GB, 18 * GB),
            ("/dev/sda2", "ext4", "/", 100 * GB, 82 * GB, 18 * GB)]
    params = {"mounts": {"/var/lib/*": {"warn_pct": 80}, "/var/*": {"warn_pct": 50}}}
    res = one(run_check(DiskUsage, params, transport=fake(combined(gnu_df(rows)))))
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert mounts["/var/lib/postgresql"]["status"] == "WARN"
    assert mounts["/"]["status"] == "OK"
    with pytest.raises(ValueError):
        DiskUsage.Params.model_validate({"mounts": {"/": {"warn_percent": 3}}})


def forecast_run(points: list[tuple[datetime, float]], rows: list[tuple[str, str, str, int, int,
                 int]], params: dict[str, object] | None = None,
                 mount: str = "/var") -> Result:
    hist = History(":memory:")
    seed(hist, mount, points)
    return one(run_check(DiskUsage, params or {}, transport=fake(combined(gnu_df(rows))),
                         history=hist, now=NOW))


def test_forecast_one_gb_a_day_with_five_free_warns() -> None:
    # 1 TB volume, 5 GB free, growing 1 GB/day: percent and free limits say nothing
    # (AND semantics spare the big disk) but the forecast does.
    used = 1019 * GB
    points = daily(7, used - 7 * GB, GB)
    rows = [("/dev/sdb1", "xfs", "/var", 1024 * GB, used, 5 * GB)]
    res = forecast_run(points, rows, {"warn_free_gb": 2, "crit_free_gb": 1})
    assert res.status is Status.WARN
    assert abs(res.metrics["/var:days_to_full"] - 5) < 0.05
    assert res.summary == "/var 100% used, 5.0 GiB free, full in ~5 d"
    fc = res.details["mounts"][0]["forecast"]
    assert fc["points"] == 8 and round(fc["growth_bytes_per_day"] / GB, 3) == 1.0


def test_forecast_below_crit_days_is_crit() -> None:
    used = 60 * GB
    rows = [("/dev/sdb1", "ext4", "/var", 100 * GB, used, 5 * GB)]
    res = forecast_run(daily(10, used - 30 * GB, 3 * GB), rows, {"warn_pct": 99,
                                                                 "crit_pct": 99})
    assert res.status is Status.CRIT
    assert res.summary == "/var 93% used, 5.0 GiB free, full in ~40 h"
    assert res.details["mounts"][0]["reasons"] == [
        "forecast CRIT: full in ~40 h (limit 3 days)"]


def test_flat_history_gives_no_forecast() -> None:
    rows = [("/dev/sdb1", "ext4", "/var", 100 * GB, 50 * GB, 50 * GB)]
    res = forecast_run(daily(10, 50 * GB, 0), rows)
    assert res.status is Status.OK
    assert "/var:days_to_full" not in res.metrics
    assert "full in" not in res.summary


def test_cleanup_drop_resets_the_trend() -> None:
    rows = [("/dev/sdb1", "ext4", "/var", 100 * GB, 31 * GB, 65 * GB)]
    # Fast growth to 80 GB, a cleanup to 30 GB two days ago, then slow growth.
    points = [*daily(10, 40 * GB, 5 * GB)[:8],
              (NOW - timedelta(days=2), 30 * GB), (NOW - timedelta(days=1), 30.5 * GB)]
    res = forecast_run(points, rows)
    assert "/var:days_to_full" not in res.metrics  # 3 points since the cleanup: too few
    points.insert(-1, (NOW - timedelta(hours=36), 30.2 * GB))
    res = forecast_run(points, rows, {"forecast_max_days": 1000})
    assert 100 < res.metrics["/var:days_to_full"] < 140
    assert res.status is Status.OK


def test_forecast_history_of_other_hosts_and_checks_is_ignored() -> None:
    hist = History(":memory:")
    seed(hist, "/var", daily(10, 10 * GB, 5 * GB), host="other")
    rows = [("/dev/sdb1", "ext4", "/var", 100 * GB, 60 * GB, 40 * GB)]
    res = one(run_check(DiskUsage, {}, transport=fake(combined(gnu_df(rows))), history=hist,
                        now=NOW))
    assert "/var:days_to_full" not in res.metrics


def test_read_only_mounts_do_not_alarm() -> None:
    rows = [("/dev/loop3", "ext4", "/mnt/iso", 100 * GB, 100 * GB, 0)]
    mounts = "/dev/loop3 /mnt/iso ext4 ro,relatime 0 0\n"
    res = one(run_check(DiskUsage, {}, transport=fake(combined(gnu_df(rows), "", mounts))))
    assert res.status is Status.OK and "(read-only)" in res.summary
    res = one(run_check(DiskUsage, {"ignore_readonly": False},
                        transport=fake(combined(gnu_df(rows), "", mounts))))
    assert res.status is Status.CRIT


def test_df_errors_are_kept_and_missing_df_is_unknown() -> None:
    res = one(run_check(DiskUsage, {}, transport=fake(
        combined(data("gnu_df_PkT_stale_nfs.txt")), data("gnu_df_PkT_stale_nfs.stderr.txt"),
        1)))
    assert res.status is Status.WARN  # the NFS share at 90%
    assert res.summary.startswith("/mnt/backup 90% used")
    assert res.details["notes"][-1] == "df: /mnt/old-nas: Stale file handle"
    assert "/snap/core20/2015" in res.details["excluded"]
    res = one(run_check(DiskUsage, {}, transport=fake("", "sh: df: not found", 127)))
    assert res.status is Status.UNKNOWN and "sh: df: not found" in res.summary


def test_windows_volumes_through_powershell() -> None:
    host = make_host("fs01", facts={"os_family": "windows"})
    tr = FakeTransport(host, {"Win32_LogicalDisk": data("windows_logicaldisk_list.json")})
    res = one(run_check(DiskUsage, {"warn_free_gb": 50, "crit_free_gb": 2}, transport=tr))
    assert tr.calls[0].kind == "powershell" and "DriveType=3" in tr.calls[0].command
    mounts = {m["mount"]: m for m in res.details["mounts"]}
    assert mounts["D:"]["used_pct"] == 97 and mounts["D:"]["status"] == "OK"
    assert res.status is Status.CRIT
    assert res.summary == "E: 99% used, 1.0 GiB free"
    assert res.metrics["E::used_bytes"] == 107239904768 - 1073741824
    res = one(run_check(DiskUsage, {"exclude_mounts": ["e:"]}, transport=tr))
    assert "E:" in res.details["excluded"]


def test_windows_powershell_failure_is_unknown() -> None:
    host = make_host("fs01", facts={"os_family": "windows"})
    tr = FakeTransport(host, {"Win32_LogicalDisk": (1, "", "Get-CimInstance : Access denied")})
    res = one(run_check(DiskUsage, {}, transport=tr))
    assert res.status is Status.UNKNOWN and "Access denied" in res.summary


def test_thresholds_use_the_one_rule_at_or_past():
    """Free space exactly at its limit and a forecast exactly at its limit both fire."""
    from datetime import datetime, timezone

    from upkeeper_disk.forecast import Forecast
    from upkeeper_disk.parsers import Filesystem
    from upkeeper_disk.usage import Thresholds, judge

    gb = 1024 ** 3
    fs = Filesystem("/srv", "/dev/sdb1", "ext4", 100 * gb, 90 * gb, 10 * gb)
    rep = judge(fs, Thresholds(warn_pct=None, crit_pct=None, crit_free_gb=10), None)
    assert rep.status is Status.CRIT
    fc = Forecast(days_to_full=14.0, growth_bytes_per_day=gb, points=10, span_hours=48,
                  since=datetime(2026, 1, 1, tzinfo=timezone.utc))
    rep = judge(fs, Thresholds(warn_pct=None, crit_pct=None), fc)
    assert rep.status is Status.WARN and "forecast WARN" in rep.reasons[0]


def test_forecast_wording_is_the_shared_duration_format():
    from upkeeper_disk.usage import about

    assert [about(d) for d in (0.01, 1.5, 1.99, 2.0, 6.4, 400)] == [
        "~1 h", "~36 h", "~2 d", "~2 d", "~6 d", "~400 d"]
