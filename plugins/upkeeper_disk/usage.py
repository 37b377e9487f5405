"""``disk.usage``: space and inodes per filesystem, with a days-to-full forecast."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.measures import format_duration, format_size, grade, renamed_params
from upkeeper.powershell import PowerShellError, run_powershell_json
from upkeeper_disk.forecast import Forecast, forecast_full
from upkeeper_disk.parsers import (
    PSEUDO_FSTYPES,
    DfParseError,
    Filesystem,
    guess_fstype,
    merge_usage,
    parse_df,
    parse_df_inodes,
    parse_proc_mounts,
    parse_windows_volumes,
)

GB = 1024**3

INODES_MARK = "@@upkeeper-df-inodes"
MOUNTS_MARK = "@@upkeeper-mounts"

#: One round trip: blocks (with types when df knows -T), inodes, then mount options.
DF_SCRIPT = (
    "LC_ALL=C; export LC_ALL; "
    "if df -PkT / >/dev/null 2>&1; then df -PkT; else df -Pk; fi; "
    f"echo '{INODES_MARK}'; df -Pi 2>/dev/null || df -i; "
    f"echo '{MOUNTS_MARK}'; cat /proc/mounts 2>/dev/null; true"
)

WINDOWS_SCRIPT = (
    "Get-CimInstance -ClassName Win32_LogicalDisk -Filter 'DriveType=3' | "
    "Select-Object DeviceID, VolumeName, FileSystem, Size, FreeSpace"
)


class Thresholds(Params):
    """Limits for one filesystem. A level fires when every limit set for it is crossed."""

    warn_pct: float | None = Field(85, ge=0, le=100, description="WARN at this percent used")
    crit_pct: float | None = Field(95, ge=0, le=100, description="CRIT at this percent used")
    warn_free_gb: float | None = Field(
        None, ge=0, description="WARN at or below this many GiB free (with warn_pct: both hold)")
    crit_free_gb: float | None = Field(
        None, ge=0, description="CRIT at or below this many GiB free (with crit_pct: both hold)")
    warn_inodes_pct: float | None = Field(85, ge=0, le=100, description="WARN at this inode %")
    crit_inodes_pct: float | None = Field(95, ge=0, le=100, description="CRIT at this inode %")
    warn_forecast_days: float | None = Field(
        14, gt=0, description="WARN when the forecast says full within this many days")
    crit_forecast_days: float | None = Field(
        3, gt=0, description="CRIT when the forecast says full within this many days")

    _renamed = model_validator(mode="before")(renamed_params(
        {"forecast_warn_days": "warn_forecast_days", "forecast_crit_days": "crit_forecast_days"},
        since="1.1", owner="disk.usage"))


class UsageParams(Thresholds):
    include_fstypes: list[str] = Field(
        default_factory=list,
        description="Check only these filesystem types (also lifts the pseudo-fs exclusion)")
    exclude_fstypes: list[str] = Field(default_factory=list,
                                       description="Filesystem types never checked")
    include_mounts: list[str] = Field(default_factory=list,
                                      description="Check only mount points matching these globs")
    exclude_mounts: list[str] = Field(default_factory=list,
                                      description="Mount point globs never checked")
    exclude_pseudo: bool = Field(True, description="Skip tmpfs, overlay, squashfs, proc ...")
    ignore_readonly: bool = Field(True, description="No space alarms for read-only mounts")
    mounts: dict[str, Thresholds] = Field(
        default_factory=dict,
        description="Per-mount overrides: mount glob -> thresholds (first match wins)")
    forecast: bool = Field(True, description="Forecast days to full from history")
    forecast_window: float = Field(14, gt=0, description="Days of history the trend uses")
    forecast_min_points: int = Field(4, ge=3, description="Samples the trend needs")
    forecast_min_hours: float = Field(24, ge=0, description="Time span the trend needs")
    forecast_reset_pct: float = Field(
        5, gt=0, description="A fall of this % of the size is a cleanup: the trend restarts")
    forecast_max_days: float = Field(365, gt=0, description="Longer forecasts are not shown")


@dataclass
class MountReport:
    fs: Filesystem
    status: Status = Status.OK
    reasons: list[str] = field(default_factory=list)
    forecast: Forecast | None = None
    inodes_alarm: bool = False

    def summary(self) -> str:
        fs = self.fs
        text = f"{fs.mount} {fs.used_pct}% used, {format_size(fs.avail_bytes)} free"
        ipct = fs.inodes_used_pct
        if self.inodes_alarm and ipct is not None:
            text += f", inodes {ipct}% used"
        if self.forecast is not None:
            text += f", full in {about(self.forecast.days_to_full)}"
        if fs.readonly:
            text += " (read-only)"
        return text

    def to_dict(self) -> dict[str, Any]:
        fs = self.fs
        return {
            "mount": fs.mount, "device": fs.device, "fstype": fs.fstype,
            "size_bytes": fs.size_bytes, "used_bytes": fs.used_bytes,
            "avail_bytes": fs.avail_bytes, "used_pct": fs.used_pct,
            "inodes_used_pct": fs.inodes_used_pct, "readonly": fs.readonly,
            "status": self.status.value, "reasons": self.reasons,
            "forecast": self.forecast.to_dict() if self.forecast else None,
        }


def about(days: float) -> str:
    """A forecast's time to full, as rough as the forecast: ``~6 d``, ``~36 h``."""
    if days >= 2:
        return "~" + format_duration(timedelta(days=round(days)))
    return "~" + format_duration(timedelta(hours=max(1, round(days * 24))))


def _matches(mount: str, globs: list[str], windows: bool) -> bool:
    if windows:
        return any(fnmatch.fnmatch(mount.upper(), g.upper().rstrip("\\")) for g in globs)
    return any(fnmatch.fnmatchcase(mount, g) for g in globs)


def select(filesystems: list[Filesystem], p: UsageParams,
           windows: bool = False) -> tuple[list[Filesystem], list[str]]:
    """Split into (checked, excluded mount points) by fstype, mount globs and size."""
    keep: list[Filesystem] = []
    dropped: list[str] = []
    include_types = {t.lower() for t in p.include_fstypes}
    exclude_types = {t.lower() for t in p.exclude_fstypes}
    for fs in filesystems:
        fstype = guess_fstype(fs).lower()
        ok = fs.size_bytes > 0
        if include_types:
            ok = ok and fstype in include_types
        elif p.exclude_pseudo:
            ok = ok and fstype not in PSEUDO_FSTYPES
        ok = ok and fstype not in exclude_types
        if p.include_mounts:
            ok = ok and _matches(fs.mount, p.include_mounts, windows)
        ok = ok and not _matches(fs.mount, p.exclude_mounts, windows)
        if ok:
            keep.append(fs)
        else:
            dropped.append(fs.mount)
    return keep, dropped


def thresholds_for(mount: str, p: UsageParams, windows: bool = False) -> Thresholds:
    """The base thresholds with the first matching per-mount override applied."""
    base = Thresholds(**{k: getattr(p, k) for k in Thresholds.model_fields})
    for glob, override in p.mounts.items():
        if _matches(mount, [glob], windows):
            merged: Thresholds = base.model_copy(
                update=override.model_dump(exclude_unset=True))
            return merged
    return base


def _level(crossed: list[bool]) -> bool:
    return bool(crossed) and all(crossed)


def judge(fs: Filesystem, t: Thresholds, forecast: Forecast | None,
          ignore_readonly: bool = True) -> MountReport:
    """Status and reasons for one filesystem."""
    rep = MountReport(fs, forecast=forecast)
    if fs.readonly and ignore_readonly:
        rep.forecast = None
        return rep
    pct = fs.used_pct
    free_gb = fs.avail_bytes / GB
    statuses: list[Status] = []
    for status, pct_limit, free_limit in ((Status.CRIT, t.crit_pct, t.crit_free_gb),
                                          (Status.WARN, t.warn_pct, t.warn_free_gb)):
        crossed = []
        if pct_limit is not None:
            crossed.append(grade(pct, crit=pct_limit) is Status.CRIT)
        if free_limit is not None:
            crossed.append(grade(free_gb, crit=free_limit, higher_is_worse=False)
                           is Status.CRIT)
        if _level(crossed):
            statuses.append(status)
            limits = [f"{pct_limit:g}%" if pct_limit is not None else "",
                      f"{format_size(free_limit * GB)} free" if free_limit is not None else ""]
            limit = " and ".join(x for x in limits if x)
            rep.reasons.append(f"space {status.value}: {pct}% used, "
                               f"{format_size(fs.avail_bytes)} free (limit {limit})")
            break
    ipct = fs.inodes_used_pct
    if ipct is not None:
        istatus = grade(ipct, t.warn_inodes_pct, t.crit_inodes_pct)
        if istatus is not Status.OK:
            ilimit = t.crit_inodes_pct if istatus is Status.CRIT else t.warn_inodes_pct
            statuses.append(istatus)
            rep.inodes_alarm = True
            rep.reasons.append(f"inodes {istatus.value}: {ipct}% used (limit {ilimit:g}%)")
    if forecast is not None:
        fstatus = grade(forecast.days_to_full, t.warn_forecast_days, t.crit_forecast_days,
                        higher_is_worse=False)
        if fstatus is not Status.OK:
            days = t.crit_forecast_days if fstatus is Status.CRIT else t.warn_forecast_days
            statuses.append(fstatus)
            rep.reasons.append(f"forecast {fstatus.value}: full in "
                               f"{about(forecast.days_to_full)} (limit {days:g} days)")
    rep.status = Status.worst(statuses)
    return rep


def _sort_key(rep: MountReport) -> tuple[int, float, int]:
    days = rep.forecast.days_to_full if rep.forecast else float("inf")
    return (-rep.status.severity, days, -rep.fs.used_pct)


def build_result(reports: list[MountReport], excluded: list[str],
                 notes: list[str] | None = None) -> Result:
    """One result for the host: the worst mount names the status and leads the summary."""
    if not reports:
        return Result(Status.UNKNOWN, "no filesystems left to check after filters "
                      f"({len(excluded)} excluded)", details={"excluded": excluded})
    ordered = sorted(reports, key=_sort_key)
    worst = ordered[0]
    others = [r for r in ordered[1:] if r.status is not Status.OK]
    if worst.status is Status.OK:
        fullest = max(reports, key=lambda r: r.fs.used_pct)
        summary = f"{len(reports)} filesystem{'s' if len(reports) != 1 else ''} OK; " \
                  f"fullest {fullest.summary()}"
    else:
        summary = worst.summary()
        if others:
            summary += f" (also {', '.join(f'{r.fs.mount} {r.status.value}' for r in others)})"
    metrics: dict[str, float] = {}
    for rep in reports:
        fs = rep.fs
        metrics[f"{fs.mount}:used_bytes"] = fs.used_bytes
        metrics[f"{fs.mount}:size_bytes"] = fs.size_bytes
        metrics[f"{fs.mount}:used_pct"] = fs.used_pct
        if fs.inodes_used_pct is not None:
            metrics[f"{fs.mount}:inodes_used_pct"] = fs.inodes_used_pct
        if rep.forecast is not None:
            metrics[f"{fs.mount}:days_to_full"] = round(rep.forecast.days_to_full, 2)
    details: dict[str, Any] = {"mounts": [r.to_dict() for r in ordered], "excluded": excluded}
    if notes:
        details["notes"] = notes
    return Result(worst.status, summary, metrics=metrics, details=details)


def split_sections(text: str) -> tuple[str, str, str]:
    """The df blocks, df inodes and /proc/mounts parts of :data:`DF_SCRIPT` output."""
    blocks, _, rest = text.partition(INODES_MARK)
    inodes, _, mounts = rest.partition(MOUNTS_MARK)
    return blocks, inodes, mounts


class DiskUsage(Check[UsageParams]):
    """Space and inodes per filesystem, with a days-to-full forecast from history."""

    name = "disk.usage"
    description = "Disk space and inodes per filesystem, with a days-to-full forecast"
    Params = UsageParams
    platforms = ("linux", "windows")
    timeout = 60.0

    def run(self, ctx: CheckContext[UsageParams]) -> Result:
        p = ctx.params
        notes: list[str] = []
        if ctx.is_windows:
            try:
                rows = run_powershell_json(ctx, WINDOWS_SCRIPT)
            except PowerShellError as exc:
                return Result(Status.UNKNOWN, f"reading volumes failed: {exc}")
            filesystems = parse_windows_volumes(rows)
        else:
            res = ctx.run(DF_SCRIPT)
            if res.timed_out:
                return Result(Status.UNKNOWN, "df timed out (a hung network mount?)")
            blocks, inodes_text, mounts_text = split_sections(res.stdout)
            try:
                filesystems = parse_df(blocks)
            except DfParseError as exc:
                err = res.stderr.strip().splitlines()
                return Result(Status.UNKNOWN, f"cannot read df output: "
                              f"{err[-1] if err else exc}")
            try:
                inodes = parse_df_inodes(inodes_text)
            except DfParseError:
                inodes = {}
                notes.append("df printed no inode table")
            filesystems = merge_usage(filesystems, inodes, parse_proc_mounts(mounts_text))
            notes += [line for line in res.stderr.strip().splitlines() if line][:10]
        checked, excluded = select(filesystems, p, ctx.is_windows)
        reports = []
        for fs in checked:
            fc = self._forecast(ctx, fs) if p.forecast and not fs.readonly else None
            rep = judge(fs, thresholds_for(fs.mount, p, ctx.is_windows), fc, p.ignore_readonly)
            reports.append(rep)
        return build_result(reports, excluded, notes)

    def _forecast(self, ctx: CheckContext[UsageParams], fs: Filesystem) -> Forecast | None:
        p = ctx.params
        since = ctx.now - timedelta(days=p.forecast_window)
        past = ctx.history.series(f"{fs.mount}:used_bytes", since=since, check=self.name)
        samples = [s for s in past if s[0] < ctx.now] + [(ctx.now, float(fs.used_bytes))]
        return forecast_full(
            samples, fs.avail_bytes, now=ctx.now, window_days=p.forecast_window,
            min_points=p.forecast_min_points, min_span_hours=p.forecast_min_hours,
            drop_bytes=fs.size_bytes * p.forecast_reset_pct / 100,
            max_days=p.forecast_max_days)
