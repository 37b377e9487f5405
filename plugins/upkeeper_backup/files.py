"""``backup.files``: dump/image style backups: the newest file matching a glob, its age and size."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import Field, field_validator

from upkeeper import Check, CheckContext, Result, Status
from upkeeper.argv import check_path
from upkeeper.measures import Size, format_size
from upkeeper.powershell import PowerShellError, parse_ps_date, ps_quote, run_powershell_json
from upkeeper_backup.common import Finding, FreshnessParams, combine, judge_age, judge_shrink
from upkeeper_backup.parsers import Snapshot

_GLOB_CHARS = re.compile(r"[*?\[]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_ABS = re.compile(r"^([A-Za-z]:[\\/]|\\\\[^\\/]+[\\/])")


class FilesParams(FreshnessParams):
    path: str = Field(description="glob of the backup files, e.g. /var/backups/db-*.sql.gz "
                                  "or D:\\Backups\\*.vhdx (wildcards in the file name only)")
    recursive: bool = Field(False, description="also look in subdirectories")
    min_size: Size = Field(1, description="CRIT when the newest file is smaller (empty dumps)")
    min_count: int = Field(1, ge=1, description="WARN when fewer matching files are kept")
    sudo: bool = Field(False, description="list as root (Linux)")

    @field_validator("path")
    @classmethod
    def _glob_in_name_only(cls, v: str) -> str:
        directory, _, name = v.replace("\\", "/").rpartition("/")
        if not name or _GLOB_CHARS.search(directory):
            raise ValueError("path must be DIRECTORY/PATTERN with wildcards only in the "
                             "file name part")
        # The directory becomes find's starting point, which has no "--": anything but an
        # absolute path could be read as an expression ("-delete/*.gz" deleted files).
        if _CONTROL.search(v) or not (v.startswith(("/", "./")) or _WINDOWS_ABS.match(v)):
            raise ValueError(f"path must be absolute (/var/backups/*.gz, ./dumps/*.gz, "
                             f"D:\\Backups\\*.bak, \\\\server\\share\\*.bak), without "
                             f"control characters: {v!r}")
        return v


@dataclass
class BackupFile:
    path: str
    size: int
    mtime: datetime


def split_glob(path: str) -> tuple[str, str]:
    """``/var/backups/*.gz`` -> (``/var/backups``, ``*.gz``); Windows separators too."""
    cut = max(path.rfind("/"), path.rfind("\\"))
    return (path[:cut] or "/", path[cut + 1:])


def parse_find_output(text: str) -> list[BackupFile]:
    """``find -printf '%T@\\t%s\\t%p\\0'`` records (NUL-separated: names may hold newlines)."""
    out = []
    for record in text.split("\0"):
        parts = record.strip("\n").split("\t", 2)
        if len(parts) != 3:
            continue
        try:
            when = datetime.fromtimestamp(float(parts[0]), tz=timezone.utc)
            out.append(BackupFile(parts[2], int(parts[1]), when))
        except ValueError:
            continue
    return sorted(out, key=lambda f: f.mtime)


def parse_ps_files(rows: list[Any]) -> list[BackupFile]:
    """Rows of ``FullName, Length, LastWriteTimeUtc`` from PowerShell JSON."""
    out = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        when = row.get("LastWriteTimeUtc")
        if isinstance(when, str):
            when = parse_ps_date(when)
        if not isinstance(when, datetime):
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        out.append(BackupFile(str(row.get("FullName")), int(row.get("Length") or 0), when))
    return sorted(out, key=lambda f: f.mtime)


_PS_LIST = """\
$items = Get-ChildItem -LiteralPath {dir} -Filter {pattern} -File -Force {recurse}\
 -ErrorAction Stop
$items | ForEach-Object {{ [pscustomobject]@{{ FullName = $_.FullName; Length = $_.Length;
  LastWriteTimeUtc = $_.LastWriteTimeUtc.ToString('o') }} }}
"""


class FilesCheck(Check[FilesParams]):
    """Newest backup file matching a glob: age (RPO), size, shrinkage, retained copies."""

    name = "backup.files"
    description = ("Backup files (dumps, images): newest file's age against the RPO, its "
                   "size and shrinkage, number of copies kept")
    Params = FilesParams
    platforms = ("linux", "windows")

    def run(self, ctx: CheckContext[FilesParams]) -> Result:
        p = ctx.params
        directory, pattern = split_glob(p.path)
        if ctx.is_windows:
            script = _PS_LIST.format(dir=ps_quote(directory), pattern=ps_quote(pattern),
                                     recurse="-Recurse" if p.recursive else "")
            try:
                files = parse_ps_files(run_powershell_json(ctx, script))
            except PowerShellError as exc:
                return Result(Status.UNKNOWN, f"cannot list {p.path}: {exc}")
        else:
            try:
                if directory != ".":
                    check_path(directory)
            except ValueError as exc:
                return Result(Status.UNKNOWN, f"cannot list {p.path} on a Linux host: "
                                              f"directory {exc}")
            cmd = ["find", directory, "-mindepth", "1"]
            if not p.recursive:
                cmd += ["-maxdepth", "1"]
            cmd += ["-type", "f", "-name", pattern, "-printf", "%T@\\t%s\\t%p\\0"]
            res = ctx.run(cmd, sudo=p.sudo)
            if res.exit_code == 127:
                return Result(Status.UNKNOWN, "find is not available on the host")
            files = parse_find_output(res.stdout)
            if not res.ok and not files:
                err = (res.stderr.strip().splitlines() or [f"find exited {res.exit_code}"])[-1]
                status = Status.CRIT if "No such file" in err else Status.UNKNOWN
                return Result(status, f"cannot list {p.path}: {err}")
        return judge_files(files, p, ctx.now, ctx.history.get_state("newest"), ctx)


def judge_files(files: list[BackupFile], p: FilesParams, now: datetime,
                remembered: Any, ctx: CheckContext[FilesParams] | None = None) -> Result:
    """Verdict on the matching files, oldest first; ``remembered`` is the last run's newest."""
    metrics: dict[str, float] = {"file_count": len(files)}
    if not files:
        return Result(Status.CRIT, f"no backup files match {p.path}", metrics=metrics)
    newest = files[-1]
    snap = Snapshot(id=newest.path, name=newest.path.replace("\\", "/").rsplit("/", 1)[-1],
                    time=newest.mtime, size=newest.size)
    previous = None
    if len(files) > 1:
        prev = files[-2]
        previous = Snapshot(id=prev.path, name=prev.path.replace("\\", "/").rsplit("/", 1)[-1],
                            time=prev.mtime, size=prev.size)
    elif isinstance(remembered, dict) and remembered.get("mtime") != newest.mtime.timestamp():
        # A single file overwritten each night: compare with what the last run saw.
        previous = Snapshot(id="previous run", name="the previous run's file",
                            time=newest.mtime, size=remembered.get("size"))
    if ctx is not None:
        ctx.history.set_state("newest", {"mtime": newest.mtime.timestamp(),
                                         "size": newest.size})
    age = now - newest.mtime
    metrics.update(age_hours=round(age.total_seconds() / 3600, 3), total_size=newest.size)
    findings = [judge_age(f"newest file {newest.path}", newest.mtime, now, p)]
    findings[0].text += f", {format_size(newest.size)}"
    if newest.size < p.min_size:
        findings.append(Finding(Status.CRIT, f"newest file is only {newest.size} bytes "
                                             f"(min_size {format_size(p.min_size)})"))
    if len(files) < p.min_count:
        findings.append(Finding(Status.WARN, f"only {len(files)} cop"
                                             f"{'y' if len(files) == 1 else 'ies'} kept "
                                             f"(min_count {p.min_count})"))
    shrink = judge_shrink(snap, previous, p.warn_shrink_pct)
    if shrink:
        findings.append(shrink)
    details = {"newest": newest.path, "newest_time": newest.mtime.isoformat(),
               "count": len(files), "oldest_time": files[0].mtime.isoformat()}
    return combine(findings, metrics, details)
