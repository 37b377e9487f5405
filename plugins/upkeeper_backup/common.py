"""What the backup checks share: params, secret scrubbing, the freshness/shrink judges."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr, field_validator, model_validator

from upkeeper import CheckContext, EnvName, Params, Result, Status
from upkeeper.argv import check_operand, check_path
from upkeeper.measures import (
    Findings,
    Size,
    duration_field_type,
    format_duration,
    format_size,
    grade,
    renamed_params,
)
from upkeeper_backup.parsers import Snapshot

_SUBSET_RE = re.compile(r"^(\d+/\d+|\d+(\.\d+)?%|\d+(\.\d+)?[KMGT]?)$", re.IGNORECASE)


#: Durations of the backup params. A bare number was hours before API 1.1: it is still
#: read so, with a deprecation warning asking for a unit.
if TYPE_CHECKING:
    BackupDuration = timedelta
else:
    BackupDuration = duration_field_type("h")

#: Param names before API 1.1, accepted with a warning until the next minor version.
RENAMED = {"max_age": "warn_age", "max_shrink_pct": "warn_shrink_pct"}


class FreshnessParams(Params):
    """RPO and shrinkage params shared by every backup check."""

    warn_age: BackupDuration = Field(
        "26h", validate_default=True,
        description="WARN when the newest backup is at least this old (the RPO)")
    crit_age: BackupDuration | None = Field(
        "50h", validate_default=True,
        description="CRIT when the newest backup is at least this old; null disables")
    warn_shrink_pct: float | None = Field(
        50, ge=0, le=100,
        description="WARN when the newest backup is at least this many percent smaller "
                    "(size or file count) than the previous one; null disables")

    _renamed = model_validator(mode="before")(
        renamed_params(RENAMED, since="1.1", owner="backup checks"))

    @model_validator(mode="after")
    def _ages_ordered(self) -> FreshnessParams:
        if self.crit_age is not None and self.crit_age < self.warn_age:
            raise ValueError("crit_age must not be shorter than warn_age")
        return self


class RepoParams(FreshnessParams):
    """Integrity and test-restore params shared by restic and borg."""

    repository: str = Field(description="repository location, passed through the environment")
    env: dict[EnvName, SecretStr] = Field(
        default_factory=dict,
        description="extra environment for the tool (e.g. AWS_SECRET_ACCESS_KEY); never "
                    "printed")
    sudo: bool = Field(False, description="run the tool as root (repository owned by root)")
    shared: bool = Field(False, description="other hosts use this repository too: lock "
                                            "fixes refuse it unless their allow_shared")
    integrity: bool = Field(True, description="run the tool's repository check")
    integrity_every: BackupDuration | None = Field(
        None, description="run the integrity check at most this often (e.g. 7d); a failed "
                          "check is repeated on every run")
    restore_sample: int | list[str] = Field(
        3, description="test restore: how many files to sample from the newest backup, "
                       "or a list of paths to restore; 0 disables")
    restore_max_file_size: Size = Field(
        "16MiB", validate_default=True, description="only sample files up to this size")
    restore_every: BackupDuration | None = Field(
        None, description="run the test restore at most this often")
    tool_timeout: float = Field(1800, gt=0, description="seconds for each tool command")

    @field_validator("restore_sample")
    @classmethod
    def _sample(cls, v: int | list[str]) -> int | list[str]:
        if isinstance(v, int) and not 0 <= v <= 100:
            raise ValueError("restore_sample must be between 0 and 100 files")
        if isinstance(v, list):
            for path in v:
                check_path(path)
        return v

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        # Travels in the environment, yet a newline or NUL there is never a repository.
        return check_operand(v)

    @field_validator("env")
    @classmethod
    def _env_values(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        # Names are checked by EnvName; a value must survive the environment too.
        for name, value in v.items():
            if "\0" in value.get_secret_value():
                raise ValueError(f"{name}: a NUL cannot travel in the environment")
        return v


def check_program(value: str) -> str:
    """An executable for argv[0]: a name looked up in PATH, or an absolute path."""
    check_operand(value)
    if "/" in value:
        check_path(value)
    return value


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
    """Freshness against the RPO; ``label`` names the backup ("latest snapshot 1a2b3c4d").
    At or past ``crit_age`` is CRIT, at or past ``warn_age`` WARN (the one rule of
    :func:`upkeeper.measures.grade`)."""
    age = now - when
    if age < -timedelta(minutes=10):
        return Finding(Status.WARN, f"{label} is dated {format_duration(-age)} in the "
                                    "future: check the clocks")
    text = f"{label} is {format_duration(max(age, timedelta(0)))} old"
    crit = p.crit_age.total_seconds() if p.crit_age is not None else None
    status = grade(age.total_seconds(), p.warn_age.total_seconds(), crit)
    if status is Status.CRIT and p.crit_age is not None:
        return Finding(status, f"{text} (crit_age is {format_duration(p.crit_age)})")
    if status is Status.WARN:
        return Finding(status, f"{text} (warn_age is {format_duration(p.warn_age)})")
    return Finding(Status.OK, text)


def judge_shrink(latest: Snapshot, previous: Snapshot | None, pct: float | None,
                 ) -> Finding | None:
    """WARN when size or file count dropped by at least ``pct`` percent since ``previous``
    (``0``: any drop)."""
    if pct is None or previous is None:
        return None

    def shrank(old: int | None, new: int | None) -> float | None:
        if new is None or not old:
            return None
        drop = 100 * (old - new) / old
        return drop if drop > 0 and grade(drop, warn=pct) is Status.WARN else None

    drops = []
    drop = shrank(previous.size, latest.size)
    if drop is not None:
        drops.append(f"size {format_size(previous.size or 0)} -> "
                     f"{format_size(latest.size or 0)} (-{drop:.0f}%)")
    drop = shrank(previous.files, latest.files)
    if drop is not None:
        drops.append(f"files {previous.files} -> {latest.files} (-{drop:.0f}%)")
    if not drops:
        return None
    return Finding(Status.WARN, f"latest backup shrank against {previous.short_id}: "
                                f"{', '.join(drops)}; data deleted or excluded?")


def combine(findings: Sequence[Finding], metrics: dict[str, float], details: dict[str, Any],
            ) -> Result:
    """One result: the worst status; every finding in the summary, problems first."""
    combined = Findings([(f.status, f.text) for f in findings])
    ordered = sorted(findings, key=lambda f: -f.status.severity)
    return Result(combined.status, "; ".join(f.text for f in ordered), metrics=metrics,
                  details=details)


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
