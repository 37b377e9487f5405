"""``backup.borg``: freshness, shrinkage, ``borg check`` and a sampled test extract."""

from __future__ import annotations

import shlex
from typing import Any

from pydantic import Field, SecretStr, model_validator

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
)
from upkeeper_backup.durations import Duration, format_size
from upkeeper_backup.parsers import (
    ParseError,
    Snapshot,
    ToolFailure,
    classify_borg_failure,
    parse_borg_archives,
    parse_borg_check,
    parse_borg_files,
    parse_borg_repo_size,
)

_FAILURE_STATUS = {
    "wrong_password": Status.CRIT,
    "no_repository": Status.CRIT,
    "locked": Status.WARN,
}


class BorgParams(RepoParams):
    passphrase: SecretStr | None = Field(
        None, description="repository passphrase (template it from a vault var); sent in "
                          "the environment, never on a command line")
    passcommand: str | None = Field(None, description="command printing the passphrase "
                                                      "(BORG_PASSCOMMAND)")
    glob_archives: str | None = Field(None, description="only archives matching this glob, "
                                                        "e.g. 'web01-*'")
    verify_data: bool = Field(False, description="borg check --verify-data (reads all data)")
    max_duration: Duration | None = Field(
        None, description="partial repository-only check of at most this long; borg resumes "
                          "where it stopped on the next run")
    lock_wait: int = Field(30, ge=0, description="seconds to wait for a repository lock")
    borg_bin: str = Field("borg", description="borg executable on the host")

    @model_validator(mode="after")
    def _no_two_secrets(self) -> BorgParams:
        if self.passphrase is not None and self.passcommand is not None:
            raise ValueError("give passphrase or passcommand, not both")
        if self.verify_data and self.max_duration is not None:
            raise ValueError("verify_data and max_duration cannot be combined (borg refuses)")
        return self


class BorgCheck(Check[BorgParams]):
    """Latest borg archive fresh, not shrunk, repository consistent, files extractable."""

    name = "backup.borg"
    description = ("borg: newest archive age (RPO), shrinkage, borg check and a sampled "
                   "test extract")
    Params = BorgParams
    platforms = ("linux",)
    timeout = 3600.0

    def run(self, ctx: CheckContext[BorgParams]) -> Result:
        secret = ctx.params.passphrase
        secrets = [secret.get_secret_value()] if secret is not None else []
        return scrub(_Run(ctx).run(), ctx.params, secrets)


class _Run:
    def __init__(self, ctx: CheckContext[BorgParams]) -> None:
        self.ctx = ctx
        self.p = ctx.params
        self.where = display_location(self.p.repository)
        # Naive borg 1.x timestamps are local time: TZ=UTC makes them UTC.
        self.env = {"BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
                    "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
                    **{k: v.get_secret_value() for k, v in self.p.env.items()},
                    "BORG_REPO": self.p.repository, "TZ": "UTC"}
        if self.p.passphrase is not None:
            self.env["BORG_PASSPHRASE"] = self.p.passphrase.get_secret_value()
        elif self.p.passcommand is not None:
            self.env["BORG_PASSCOMMAND"] = self.p.passcommand
        self.details: dict[str, Any] = {"repository": self.where}

    def argv(self, *args: str) -> list[str]:
        cmd, *rest = args
        return [self.p.borg_bin, cmd, "--log-json", "--lock-wait", str(self.p.lock_wait), *rest]

    def borg(self, *args: str) -> CommandResult:
        return self.ctx.run(self.argv(*args), env=self.env, sudo=self.p.sudo,
                            timeout=self.p.tool_timeout)

    def failed(self, failure: ToolFailure, step: str) -> Result:
        status = _FAILURE_STATUS.get(failure.kind, Status.UNKNOWN)
        self.details["failure"] = failure.kind
        return Result(status, f"borg {step} failed for {self.where}: {failure.message}",
                      details=self.details)

    def selection(self) -> list[str]:
        return ["--glob-archives", self.p.glob_archives] if self.p.glob_archives else []

    def run(self) -> Result:
        p = self.p
        res = self.borg("list", "--json", *self.selection())
        if res.timed_out:
            return Result(Status.UNKNOWN, f"borg list timed out for {self.where}")
        if not res.ok:
            return self.failed(classify_borg_failure(res.exit_code, res.stderr), "list")
        try:
            archives = parse_borg_archives(res.stdout)
        except ParseError as exc:
            return Result(Status.UNKNOWN, f"unexpected borg list output: {exc}")
        metrics: dict[str, float] = {"snapshot_count": len(archives)}
        if not archives:
            glob = f" matching {p.glob_archives}" if p.glob_archives else ""
            return Result(Status.CRIT, f"no archives{glob} in {self.where}", metrics=metrics,
                          details=self.details)
        latest = archives[-1]
        previous = archives[-2] if len(archives) > 1 else None
        self.details.update(latest=latest.name, latest_time=latest.time.isoformat())
        metrics["age_hours"] = round((self.ctx.now - latest.time).total_seconds() / 3600, 3)
        findings = [judge_age(f"latest archive {latest.name}", latest.time, self.ctx.now, p)]
        findings[0].text += f" ({len(archives)} archive{'s' if len(archives) != 1 else ''})"
        self.fill_sizes(latest, previous, metrics)
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

    def fill_sizes(self, latest: Snapshot, previous: Snapshot | None,
                   metrics: dict[str, float]) -> None:
        last = "2" if previous is not None else "1"
        res = self.borg("info", "--json", "--last", last, *self.selection())
        if not res.ok:
            self.details["info_error"] = classify_borg_failure(res.exit_code, res.stderr).message
            return
        try:
            infos = {a.name: a for a in parse_borg_archives(res.stdout)}
            repo_size = parse_borg_repo_size(res.stdout)
        except ParseError as exc:
            self.details["info_error"] = str(exc)
            return
        for snap in (latest, previous):
            if snap is not None and snap.name in infos:
                info = infos[snap.name]
                snap.size, snap.files, snap.hostname = info.size, info.files, info.hostname
        if repo_size is not None:
            metrics["repository_size"] = repo_size
        if latest.hostname:
            self.details["hostname"] = latest.hostname

    def integrity(self, metrics: dict[str, float]) -> Finding:
        p = self.p
        args = ["check"]
        if p.verify_data:
            args.append("--verify-data")
        if p.max_duration is not None:
            args += ["--repository-only", "--max-duration",
                     str(max(1, int(p.max_duration.total_seconds())))]
        res = self.borg(*args)
        if res.timed_out:
            return Finding(Status.UNKNOWN, f"borg check timed out after {p.tool_timeout:g}s")
        if res.exit_code == 2:
            failure = classify_borg_failure(res.exit_code, res.stderr)
            if failure.kind != "error":
                return Finding(_FAILURE_STATUS.get(failure.kind, Status.UNKNOWN),
                               f"integrity check skipped: {failure.message}")
        report = parse_borg_check(res.stderr, res.exit_code)
        metrics["integrity_ok"] = 1 if report.ok else 0
        mark_done(self.ctx, "integrity", report.ok)
        if report.ok:
            what = ("verify-data" if p.verify_data else
                    "partial repository" if p.max_duration is not None else "")
            return Finding(Status.OK, f"borg check {what + ' ' if what else ''}OK")
        self.details["check_errors"] = report.errors
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        return Finding(Status.CRIT, f"borg check found errors: {report.errors[0]}{more}")

    def restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        try:
            return self._restore(latest, metrics)
        except (CommandError, RuntimeError) as exc:
            return Finding(Status.UNKNOWN, f"test restore could not run: {exc}")

    def _restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        p, ctx = self.p, self.ctx
        listing = self.borg("list", "--json-lines", f"::{latest.name}")
        if not listing.ok:
            failure = classify_borg_failure(listing.exit_code, listing.stderr)
            metrics["restore_ok"] = 0
            return Finding(Status.CRIT, f"test extract failed listing files: {failure.message}")
        sample = pick_sample(parse_borg_files(listing.stdout), p.restore_sample,
                             p.restore_max_file_size, f"{latest.id}:{ctx.run_id}:{ctx.now}")
        for node in sample:
            node.path = node.path.lstrip("/")
        wanted = [n.path for n in sample if n.size >= 0]
        if not wanted:
            if not sample:
                return Finding(Status.OK, "no files small enough to test-extract")
            report = compare_restore(sample, [None] * len(sample), [None] * len(sample))
            metrics["restore_ok"] = 0
            return restore_finding(report, len(sample))
        tmp = make_tempdir(ctx, p.sudo)
        try:
            # borg extracts into the current directory; the list form quotes every value.
            extract = shlex.join(self.argv("extract", f"::{latest.name}", *wanted))
            res = ctx.run(f"cd {shlex.quote(tmp)} && exec {extract}", env=self.env,
                          sudo=p.sudo, timeout=p.tool_timeout)
            if res.exit_code != 0 or res.timed_out:
                failure = classify_borg_failure(res.exit_code, res.stderr)
                if failure.kind == "locked":
                    return Finding(Status.WARN, f"test extract skipped: {failure.message}")
                metrics["restore_ok"] = 0
                mark_done(ctx, "restore", False)
                why = "timed out" if res.timed_out else failure.message
                return Finding(Status.CRIT, f"test restore FAILED: borg extract: {why}")
            restored = stat_and_hash(ctx, [f"{tmp}/{n.path}" for n in sample], p.sudo)
            live = stat_and_hash(ctx, [f"/{n.path}" for n in sample], p.sudo)
        finally:
            remove_tempdir(ctx, tmp, p.sudo)
        report = compare_restore(sample, restored, live)
        self.details["restore"] = report.files
        metrics["restore_ok"] = 0 if report.failures else 1
        mark_done(ctx, "restore", not report.failures)
        return restore_finding(report, len(sample))
