"""What restic and borg checks share: params, the freshness/shrink judges, sampled restores."""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from upkeeper import CheckContext, EnvName, Params, Result, Status
from upkeeper_backup.durations import Duration, Size, format_duration, format_size
from upkeeper_backup.parsers import FileNode, Snapshot

_TEMP_PREFIX = "upkeeper-restore."
_SUBSET_RE = re.compile(r"^(\d+/\d+|\d+(\.\d+)?%|\d+(\.\d+)?[KMGT]?)$", re.IGNORECASE)


class FreshnessParams(Params):
    """RPO and shrinkage params shared by every backup check."""

    max_age: Duration = Field("26h", validate_default=True,
                              description="WARN when the newest backup is older (the RPO)")
    crit_age: Duration | None = Field("50h", validate_default=True,
                                      description="CRIT when the newest backup is older")
    max_shrink_pct: float | None = Field(
        50, ge=0, le=100,
        description="WARN when the newest backup is this many percent smaller (size or "
                    "file count) than the previous one; null disables")

    @model_validator(mode="after")
    def _ages_ordered(self) -> FreshnessParams:
        if self.crit_age is not None and self.crit_age < self.max_age:
            raise ValueError("crit_age must not be shorter than max_age")
        return self


class RepoParams(FreshnessParams):
    """Integrity and test-restore params shared by restic and borg."""

    repository: str = Field(description="repository location, passed through the environment")
    env: dict[EnvName, SecretStr] = Field(
        default_factory=dict,
        description="extra environment for the tool (e.g. AWS_SECRET_ACCESS_KEY); never "
                    "printed")
    sudo: bool = Field(False, description="run the tool as root (repository owned by root)")
    integrity: bool = Field(True, description="run the tool's repository check")
    integrity_every: Duration | None = Field(
        None, description="run the integrity check at most this often (e.g. 7d); a failed "
                          "check is repeated on every run")
    restore_sample: int | list[str] = Field(
        3, description="test restore: how many files to sample from the newest backup, "
                       "or a list of paths to restore; 0 disables")
    restore_max_file_size: Size = Field(
        "16MiB", validate_default=True, description="only sample files up to this size")
    restore_every: Duration | None = Field(
        None, description="run the test restore at most this often")
    tool_timeout: float = Field(1800, gt=0, description="seconds for each tool command")

    @field_validator("restore_sample")
    @classmethod
    def _sample(cls, v: int | list[str]) -> int | list[str]:
        if isinstance(v, int) and not 0 <= v <= 100:
            raise ValueError("restore_sample must be between 0 and 100 files")
        return v


def display_location(repo: str) -> str:
    """The repository without any ``user:password@`` part of a URL."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", repo)


def scrub(result: Result, p: RepoParams, secrets: Iterable[str]) -> Result:
    """Mask the repository's URL credentials and every secret in text taken from tool
    output (restic/borg error messages may quote the repository URL)."""
    pairs = [(p.repository, display_location(p.repository))]
    pairs += [(s, "********") for s in secrets if len(s) >= 4]
    pairs += [(v.get_secret_value(), "********") for v in p.env.values()
              if len(v.get_secret_value()) >= 4]

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for raw, shown in pairs:
                if raw and raw != shown:
                    value = value.replace(raw, shown)
            return value
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    result.summary = clean(result.summary)
    result.details = clean(result.details)
    return result


@dataclass
class Finding:
    """One part of the verdict (freshness, shrinkage, integrity, restore)."""

    status: Status
    text: str


def judge_age(label: str, when: datetime, now: datetime, p: FreshnessParams) -> Finding:
    """Freshness against the RPO; ``label`` names the backup ("latest snapshot 1a2b3c4d")."""
    age = now - when
    text = f"{label} is {format_duration(age)} old"
    if p.crit_age is not None and age > p.crit_age:
        return Finding(Status.CRIT, f"{text} (over crit_age {format_duration(p.crit_age)})")
    if age > p.max_age:
        return Finding(Status.WARN, f"{text} (over max_age {format_duration(p.max_age)})")
    if age < -timedelta(minutes=10):
        return Finding(Status.WARN, f"{text}: check the clocks")
    return Finding(Status.OK, text)


def judge_shrink(latest: Snapshot, previous: Snapshot | None, pct: float | None,
                 ) -> Finding | None:
    """WARN when size or file count dropped more than ``pct`` percent since ``previous``."""
    if pct is None or previous is None:
        return None
    drops = []
    if latest.size is not None and previous.size:
        drop = 100 * (previous.size - latest.size) / previous.size
        if drop > pct:
            drops.append(f"size {format_size(previous.size)} -> {format_size(latest.size)} "
                         f"(-{drop:.0f}%)")
    if latest.files is not None and previous.files:
        drop = 100 * (previous.files - latest.files) / previous.files
        if drop > pct:
            drops.append(f"files {previous.files} -> {latest.files} (-{drop:.0f}%)")
    if not drops:
        return None
    return Finding(Status.WARN, f"latest backup shrank against {previous.short_id}: "
                                f"{', '.join(drops)}; data deleted or excluded?")


def combine(findings: Sequence[Finding], metrics: dict[str, float], details: dict[str, Any],
            ) -> Result:
    """One result: worst status, problems first in the summary."""
    status = Status.worst(f.status for f in findings)
    ordered = sorted(findings, key=lambda f: -f.status.severity)
    return Result(status, "; ".join(f.text for f in ordered), metrics=metrics, details=details)


def due(ctx: CheckContext[Any], key: str, every: timedelta | None) -> bool:
    """True when a periodic step should run now (never ran, last failed, or interval over)."""
    if every is None:
        return True
    last = ctx.history.get_state(key)
    if not isinstance(last, dict) or not last.get("ok"):
        return True
    try:
        when = datetime.fromisoformat(str(last["at"]))
    except (KeyError, ValueError):
        return True
    return bool(ctx.now - when >= every)


def mark_done(ctx: CheckContext[Any], key: str, ok: bool) -> None:
    ctx.history.set_state(key, {"at": ctx.now.isoformat(), "ok": ok})


def validate_subset(value: str | int | None) -> str | int | None:
    """``read_data_subset``: an int t rotates n/t across runs; else ``n/t``, ``x%`` or a size."""
    if value is None or isinstance(value, int):
        if isinstance(value, int) and value < 1:
            raise ValueError("read_data_subset as a number of runs must be at least 1")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    if not _SUBSET_RE.match(text):
        raise ValueError("read_data_subset must be a number of runs (7), n/t, x% or a size")
    return text


@dataclass
class FileState:
    size: int
    mtime: int
    sha256: str


_HASH_SCRIPT = (
    'for f in "$@"; do if [ -f "$f" ] && [ -r "$f" ]; then '
    "printf '%s %s\\n' \"$(stat -L -c '%s %Y' -- \"$f\")\" "
    "\"$(sha256sum < \"$f\" | cut -d' ' -f1)\"; else echo missing; fi; done"
)


def stat_and_hash(ctx: CheckContext[Any], paths: Sequence[str], sudo: bool,
                  ) -> list[FileState | None]:
    """Size, mtime (s) and SHA-256 of each file on the host; None where it is missing."""
    if not paths:
        return []
    res = ctx.run(["sh", "-c", _HASH_SCRIPT, "sh", *paths], sudo=sudo).check_ok("hashing files")
    return parse_hash_lines(res.stdout, len(paths))


def parse_hash_lines(text: str, count: int) -> list[FileState | None]:
    out: list[FileState | None] = []
    for line in text.splitlines()[:count]:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
            out.append(FileState(int(parts[0]), int(parts[1]), parts[2]))
        else:
            out.append(None)
    out.extend([None] * (count - len(out)))
    return out


def make_tempdir(ctx: CheckContext[Any], sudo: bool) -> str:
    res = ctx.run(["mktemp", "-d", "-t", _TEMP_PREFIX + "XXXXXXXX"], sudo=sudo)
    res.check_ok("creating a temporary directory for the test restore")
    path = res.stdout.strip()
    if not _is_our_tempdir(path):
        raise RuntimeError(f"mktemp returned an unexpected path: {path!r}")
    return path


def remove_tempdir(ctx: CheckContext[Any], path: str, sudo: bool) -> None:
    # Guard against ever removing anything but the directory mktemp made for us.
    if _is_our_tempdir(path):
        ctx.run(["rm", "-rf", "--", path], sudo=sudo, timeout=300)


def _is_our_tempdir(path: str) -> bool:
    return (path.startswith("/") and "\n" not in path and ".." not in path
            and path.rstrip("/").rsplit("/", 1)[-1].startswith(_TEMP_PREFIX))


def pick_sample(files: Sequence[FileNode], wanted: int | list[str], max_size: int,
                seed: str) -> list[FileNode]:
    """Files to restore: the listed paths, or ``wanted`` random non-empty files up to
    ``max_size`` (the seed changes per run so the sample rotates)."""
    if isinstance(wanted, list):
        by_path = {f.path.lstrip("/"): f for f in files}
        return [by_path.get(w.lstrip("/"), FileNode(w, -1)) for w in wanted]
    pool = [f for f in files if 0 < f.size <= max_size]
    rng = random.Random(seed)
    return rng.sample(pool, min(wanted, len(pool)))


@dataclass
class RestoreReport:
    verified: int = 0
    changed: int = 0
    failures: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


def compare_restore(sample: Sequence[FileNode], restored: Sequence[FileState | None],
                    live: Sequence[FileState | None]) -> RestoreReport:
    """Judge restored files: present with the snapshot's size, and identical to the live
    file wherever that is unchanged since the backup (same size and mtime)."""
    rep = RestoreReport()
    for node, got, now in zip(sample, restored, live, strict=True):
        entry: dict[str, Any] = {"path": node.path, "size": node.size}
        if node.size < 0:
            rep.failures.append(f"{node.path}: not in the backup")
            entry["result"] = "not in backup"
        elif got is None:
            rep.failures.append(f"{node.path}: not restored")
            entry["result"] = "not restored"
        elif got.size != node.size:
            rep.failures.append(f"{node.path}: restored {got.size} bytes, backup says "
                                f"{node.size}")
            entry["result"] = "size mismatch"
        elif now is None or now.size != got.size or now.mtime != got.mtime:
            rep.changed += 1
            entry["result"] = "live file changed since backup (restore not compared)"
        elif now.sha256 != got.sha256:
            rep.failures.append(f"{node.path}: restored content differs from the unchanged "
                                "live file")
            entry["result"] = "content mismatch"
        else:
            rep.verified += 1
            entry["result"] = "identical"
        rep.files.append(entry)
    return rep


def restore_finding(rep: RestoreReport, sampled: int) -> Finding:
    if rep.failures:
        more = f" (+{len(rep.failures) - 1} more)" if len(rep.failures) > 1 else ""
        return Finding(Status.CRIT, f"test restore FAILED: {rep.failures[0]}{more}")
    text = f"test restore of {sampled} file{'s' if sampled != 1 else ''} OK"
    if rep.changed:
        text += f" ({rep.verified} identical to live, {rep.changed} changed since backup)"
    return Finding(Status.OK, text)


def quote_list(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
