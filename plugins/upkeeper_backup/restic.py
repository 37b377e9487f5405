"""``backup.restic``: freshness, shrinkage, ``restic check`` and a sampled test restore."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from upkeeper import Check, CheckContext, CommandError, CommandResult, Result, Status
from upkeeper_backup.common import (
    Finding,
    RepoParams,
    combine,
    compare_restore,
    display_location,
    due,
    judge_age,
    judge_shrink,
    make_tempdir,
    mark_done,
    pick_sample,
    remove_tempdir,
    restore_finding,
    scrub,
    stat_and_hash,
    validate_subset,
)
from upkeeper_backup.durations import format_size
from upkeeper_backup.parsers import (
    ParseError,
    Snapshot,
    ToolFailure,
    classify_restic_failure,
    parse_restic_check,
    parse_restic_ls,
    parse_restic_snapshots,
    parse_restic_stats,
)

_FAILURE_STATUS = {
    "wrong_password": Status.CRIT,
    "no_repository": Status.CRIT,
    "locked": Status.WARN,
}
_SIZE_CACHE_KEY = "snapshot_sizes"


class ResticParams(RepoParams):
    password: SecretStr | None = Field(
        None, description="repository password (template it from a vault var); sent in "
                          "the environment, never on a command line")
    password_file: str | None = Field(None, description="password file on the host")
    password_command: str | None = Field(None, description="command printing the password")
    host: str | None = Field(None, description="only snapshots of this hostname")
    paths: list[str] = Field(default_factory=list, description="only snapshots of these paths")
    tags: list[str] = Field(default_factory=list,
                            description="only snapshots carrying all these tags")
    read_data_subset: int | str | None = Field(
        None, description="also read pack data: a number t reads 1/t of it per run, "
                          "rotating so all data is read over t runs; or n/t, 10%, 2G")
    restic_bin: str = Field("restic", description="restic executable on the host")

    @field_validator("read_data_subset", mode="before")
    @classmethod
    def _subset(cls, v: Any) -> Any:
        return validate_subset(v)

    @model_validator(mode="after")
    def _one_password(self) -> ResticParams:
        given = [n for n in ("password", "password_file", "password_command")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of password, password_file, password_command")
        return self


class ResticCheck(Check[ResticParams]):
    """Latest restic snapshot fresh, not shrunk, repository consistent, files restorable."""

    name = "backup.restic"
    description = ("restic: newest snapshot age (RPO), shrinkage, restic check and a "
                   "sampled test restore")
    Params = ResticParams
    platforms = ("linux",)
    timeout = 3600.0

    def run(self, ctx: CheckContext[ResticParams]) -> Result:
        secret = ctx.params.password
        secrets = [secret.get_secret_value()] if secret is not None else []
        return scrub(_Run(ctx).run(), ctx.params, secrets)


class _Run:
    """One evaluation; holds the context and the environment that carries the secrets."""

    def __init__(self, ctx: CheckContext[ResticParams]) -> None:
        self.ctx = ctx
        self.p = ctx.params
        self.where = display_location(self.p.repository)
        self.env = {k: v.get_secret_value() for k, v in self.p.env.items()}
        self.env["RESTIC_REPOSITORY"] = self.p.repository
        if self.p.password is not None:
            self.env["RESTIC_PASSWORD"] = self.p.password.get_secret_value()
        elif self.p.password_file is not None:
            self.env["RESTIC_PASSWORD_FILE"] = self.p.password_file
        elif self.p.password_command is not None:
            self.env["RESTIC_PASSWORD_COMMAND"] = self.p.password_command
        self.details: dict[str, Any] = {"repository": self.where}

    def restic(self, *args: str) -> CommandResult:
        return self.ctx.run([self.p.restic_bin, *args], env=self.env, sudo=self.p.sudo,
                            timeout=self.p.tool_timeout)

    def failed(self, failure: ToolFailure, step: str) -> Result:
        status = _FAILURE_STATUS.get(failure.kind, Status.UNKNOWN)
        self.details["failure"] = failure.kind
        return Result(status, f"restic {step} failed for {self.where}: {failure.message}",
                      details=self.details)

    def run(self) -> Result:
        p = self.p
        args = ["snapshots", "--json", "--no-lock"]
        if p.host:
            args += ["--host", p.host]
        for path in p.paths:
            args += ["--path", path]
        if p.tags:
            args += ["--tag", ",".join(p.tags)]
        res = self.restic(*args)
        if res.timed_out:
            return Result(Status.UNKNOWN, f"restic snapshots timed out for {self.where}")
        if not res.ok:
            return self.failed(classify_restic_failure(res.exit_code, res.stderr), "snapshots")
        try:
            snaps = parse_restic_snapshots(res.stdout)
        except ParseError as exc:
            return Result(Status.UNKNOWN, f"unexpected restic snapshots output: {exc}")
        metrics: dict[str, float] = {"snapshot_count": len(snaps)}
        if not snaps:
            return Result(Status.CRIT, f"no snapshots{self.filter_text()} in {self.where}",
                          metrics=metrics, details=self.details)
        latest = snaps[-1]
        previous = next((s for s in reversed(snaps[:-1]) if s.same_set(latest)), None)
        self.details.update(latest=latest.id, latest_time=latest.time.isoformat(),
                            hostname=latest.hostname, paths=latest.paths)
        age = self.ctx.now - latest.time
        metrics["age_hours"] = round(age.total_seconds() / 3600, 3)
        findings = [judge_age(f"latest snapshot {latest.short_id}", latest.time, self.ctx.now, p)]
        findings[0].text += f" ({len(snaps)} snapshot{'s' if len(snaps) != 1 else ''})"
        self.fill_sizes(latest, previous)
        if latest.size is not None:
            metrics["total_size"] = latest.size
            self.details["total_size"] = format_size(latest.size)
        shrink = judge_shrink(latest, previous, p.max_shrink_pct)
        if shrink:
            findings.append(shrink)
        if p.integrity and due(self.ctx, "integrity", p.integrity_every):
            findings.append(self.integrity(metrics))
        if p.restore_sample and due(self.ctx, "restore", p.restore_every):
            findings.append(self.restore(latest, metrics))
        return combine(findings, metrics, self.details)

    def filter_text(self) -> str:
        parts = [f"host={self.p.host}"] if self.p.host else []
        parts += [f"path={x}" for x in self.p.paths] + [f"tag={x}" for x in self.p.tags]
        return f" matching {' '.join(parts)}" if parts else ""

    def fill_sizes(self, latest: Snapshot, previous: Snapshot | None) -> None:
        """Sizes from restic >= 0.17 summaries, else ``restic stats`` (cached per snapshot)."""
        wanted = [s for s in (latest, previous) if s is not None]
        if all(s.size is not None for s in wanted):
            return
        cache = self.ctx.history.get_state(_SIZE_CACHE_KEY) or {}
        fresh: dict[str, list[int | None]] = {}
        for snap in wanted:
            if snap.id in cache:
                snap.size, snap.files = cache[snap.id]
            else:
                res = self.restic("stats", "--json", "--no-lock", snap.id)
                if not res.ok:
                    self.details["stats_error"] = classify_restic_failure(
                        res.exit_code, res.stderr).message
                    snap.size = snap.files = None
                    continue
                try:
                    snap.size, snap.files = parse_restic_stats(res.stdout)
                except ParseError as exc:
                    self.details["stats_error"] = str(exc)
                    continue
            fresh[snap.id] = [snap.size, snap.files]
        self.ctx.history.set_state(_SIZE_CACHE_KEY, fresh)

    def integrity(self, metrics: dict[str, float]) -> Finding:
        p = self.p
        args = ["check"]
        subset = p.read_data_subset
        n = 1
        if isinstance(subset, int):
            n = int(self.ctx.history.get_state("read_data_next") or 1)
            n = n if 1 <= n <= subset else 1
            args += ["--read-data-subset", f"{n}/{subset}"]
            self.details["read_data_subset"] = f"{n}/{subset}"
        elif subset:
            args += ["--read-data-subset", subset]
            self.details["read_data_subset"] = subset
        res = self.restic(*args)
        if res.timed_out:
            return Finding(Status.UNKNOWN, f"restic check timed out after {p.tool_timeout:g}s")
        if res.exit_code != 0:
            failure = classify_restic_failure(res.exit_code, res.stderr)
            if failure.kind != "error":
                return Finding(_FAILURE_STATUS.get(failure.kind, Status.UNKNOWN),
                               f"integrity check skipped: {failure.message}")
        if isinstance(subset, int):
            self.ctx.history.set_state("read_data_next", n % subset + 1)
        report = parse_restic_check(res.stdout + "\n" + res.stderr, res.exit_code)
        metrics["integrity_ok"] = 1 if report.ok else 0
        mark_done(self.ctx, "integrity", report.ok)
        if report.ok:
            read = f", read data {self.details['read_data_subset']}" if subset else ""
            return Finding(Status.OK, f"restic check OK{read}")
        self.details["check_errors"] = report.errors
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        return Finding(Status.CRIT, f"restic check found errors: {report.errors[0]}{more}")

    def restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        try:
            return self._restore(latest, metrics)
        except (CommandError, RuntimeError) as exc:
            return Finding(Status.UNKNOWN, f"test restore could not run: {exc}")

    def _restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        p, ctx = self.p, self.ctx
        listing = self.restic("ls", "--json", "--no-lock", latest.id)
        if not listing.ok:
            failure = classify_restic_failure(listing.exit_code, listing.stderr)
            metrics["restore_ok"] = 0
            return Finding(Status.CRIT, f"test restore failed listing files: {failure.message}")
        sample = pick_sample(parse_restic_ls(listing.stdout), p.restore_sample,
                             p.restore_max_file_size, f"{latest.id}:{ctx.run_id}:{ctx.now}")
        if not sample:
            return Finding(Status.OK, "no files small enough to test-restore")
        includes = [arg for n in sample if n.size >= 0
                    for arg in ("--include", _escape_pattern(n.path))]
        if not includes:
            report = compare_restore(sample, [None] * len(sample), [None] * len(sample))
            metrics["restore_ok"] = 0
            return restore_finding(report, len(sample))
        tmp = make_tempdir(ctx, p.sudo)
        try:
            res = self.restic("restore", latest.id, "--target", tmp, "--verify", *includes)
            if res.exit_code != 0 or res.timed_out:
                failure = classify_restic_failure(res.exit_code, res.stderr)
                if failure.kind == "locked":
                    return Finding(Status.WARN, f"test restore skipped: {failure.message}")
                metrics["restore_ok"] = 0
                mark_done(ctx, "restore", False)
                why = "timed out" if res.timed_out else failure.message
                return Finding(Status.CRIT, f"test restore FAILED: restic restore: {why}")
            restored = stat_and_hash(ctx, [tmp + n.path for n in sample], p.sudo)
            live = stat_and_hash(ctx, [n.path for n in sample], p.sudo)
        finally:
            remove_tempdir(ctx, tmp, p.sudo)
        report = compare_restore(sample, restored, live)
        self.details["restore"] = report.files
        metrics["restore_ok"] = 0 if report.failures else 1
        mark_done(ctx, "restore", not report.failures)
        return restore_finding(report, len(sample))


def _escape_pattern(path: str) -> str:
    """restic --include takes glob patterns; escape so the path matches literally."""
    out = path
    for ch in ("\\", "*", "?", "["):
        out = out.replace(ch, "\\" + ch)
    return out
