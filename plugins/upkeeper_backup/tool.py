"""One evaluation of a repository by a backup tool (restic, borg): freshness, shrinkage,
integrity and a sampled test restore. Each tool supplies its commands and parsers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from upkeeper import CheckContext, CommandResult, Result, Status, TransportError
from upkeeper.measures import format_size
from upkeeper_backup.common import (
    Finding,
    RepoParams,
    combine,
    display_location,
    due,
    judge_age,
    judge_shrink,
    mark_done,
)
from upkeeper_backup.gate import COORDINATOR, Access, GateTimeout, outcome_key, repo_identity
from upkeeper_backup.parsers import FileNode, IntegrityReport, ParseError, Snapshot, ToolFailure
from upkeeper_backup.restore import (
    compare_restore,
    make_tempdir,
    pick_sample,
    remove_tempdir,
    restore_finding,
    stat_and_hash,
)

P = TypeVar("P", bound=RepoParams)

_FAILURE_STATUS = {
    "wrong_password": Status.CRIT,
    "no_repository": Status.CRIT,
    "locked": Status.WARN,
}


class RepoRun(ABC, Generic[P]):
    """The shared flow; subclasses name the tool's commands and read its output."""

    tool: ClassVar[str]
    #: what one backup is called: "snapshot" (restic), "archive" (borg)
    noun: ClassVar[str]
    #: the tool's listing step and restore command, as words for summaries
    list_step: ClassVar[str]
    restore_step: ClassVar[str]
    #: "restore" or "extract", as in "test restore skipped"
    restore_word: ClassVar[str]
    #: who vouches for restored chunks besides our own hashes ("" when nobody)
    tool_check: ClassVar[str] = ""

    def __init__(self, ctx: CheckContext[P]) -> None:
        self.ctx = ctx
        self.p: P = ctx.params
        self.where = display_location(self.p.repository)
        self.env = self.tool_env()
        self.details: dict[str, Any] = {"repository": self.where}
        self.identity = repo_identity(self.p.repository, ctx.host)
        self.gate = COORDINATOR.gate(self.identity)

    # -- what each tool supplies -------------------------------------------------------

    @abstractmethod
    def tool_env(self) -> dict[str, str]:
        """The tool's environment: repository, secret, extra ``env``."""

    @abstractmethod
    def argv(self, *args: str) -> list[str]:
        """The full command line for a subcommand and its arguments."""

    @abstractmethod
    def classify(self, res: CommandResult) -> ToolFailure:
        """Why a command failed."""

    @abstractmethod
    def list_args(self) -> tuple[list[str], Access]:
        """The command listing backups (filtered by params), and the lock it takes."""

    @abstractmethod
    def parse_list(self, stdout: str) -> list[Snapshot]:
        """Backups, oldest first."""

    @abstractmethod
    def filter_text(self) -> str:
        """`` matching ...`` for the params' filters, or ``""``."""

    @abstractmethod
    def previous_of(self, snaps: Sequence[Snapshot]) -> Snapshot | None:
        """The earlier backup the latest is compared with for shrinkage."""

    @abstractmethod
    def latest_details(self, latest: Snapshot) -> dict[str, Any]:
        """Details naming the latest backup."""

    @abstractmethod
    def fill_sizes(self, latest: Snapshot, previous: Snapshot | None,
                   metrics: dict[str, float]) -> None:
        """Set ``size``/``files`` of the two backups where the tool can tell."""

    @abstractmethod
    def integrity_args(self) -> list[str]:
        """The repository check's subcommand and arguments."""

    @abstractmethod
    def integrity_skipped(self, res: CommandResult) -> ToolFailure | None:
        """A failure that means the check did not run (locked, no password...)."""

    @abstractmethod
    def parse_integrity(self, res: CommandResult) -> IntegrityReport:
        """The check's verdict."""

    @abstractmethod
    def integrity_ok_text(self) -> str:
        """Summary text of a passed check."""

    def integrity_ran(self) -> None:
        """Called after the check ran (restic rotates its read-data subset)."""

    @abstractmethod
    def files_args(self, latest: Snapshot) -> tuple[list[str], Access]:
        """The command listing the latest backup's files, and the lock it takes."""

    @abstractmethod
    def parse_files(self, stdout: str) -> list[FileNode]:
        """Regular files of the backup."""

    @abstractmethod
    def recorded_hashes(self, latest: Snapshot, nodes: Sequence[FileNode],
                        workdir: str) -> dict[str, str]:
        """SHA-256 of each sampled file as the repository holds it, by path (``workdir``:
        a private directory for scratch files)."""

    @abstractmethod
    def restore_command(self, latest: Snapshot, nodes: Sequence[FileNode],
                        target: str) -> list[str]:
        """The argv restoring ``nodes`` under ``target`` (takes a shared lock)."""

    @abstractmethod
    def restored_path(self, target: str, node: FileNode) -> str:
        """Where ``node`` lands under ``target``."""

    @abstractmethod
    def live_path(self, node: FileNode) -> str:
        """Where ``node`` lives on the host."""

    def lock_text(self, failure: ToolFailure) -> str:
        """The message of a "locked" failure (borg reads its lock roster)."""
        return failure.message

    # -- running commands ----------------------------------------------------------------

    @contextmanager
    def holding(self, access: Access) -> Iterator[None]:
        """This process's gate for the repository: exclusive for the integrity check (the
        tool locks exclusively), shared for commands that take the tool's shared lock."""
        with self.gate.hold(access, self.ctx.remaining(), self.ctx.host.name):
            yield

    def run_tool(self, args: Sequence[str], access: Access = "none") -> CommandResult:
        return self.run_argv(self.argv(*args), access)

    def run_argv(self, argv: Sequence[str], access: Access) -> CommandResult:
        with self.holding(access):
            return self.ctx.run(list(argv), env=self.env, sudo=self.p.sudo,
                                timeout=self.p.tool_timeout)

    def failed(self, failure: ToolFailure, step: str) -> Result:
        status = _FAILURE_STATUS.get(failure.kind, Status.UNKNOWN)
        self.details["failure"] = failure.kind
        message = self.lock_text(failure) if failure.kind == "locked" else failure.message
        return Result(status, f"{self.tool} {step} failed for {self.where}: {message}",
                      details=self.details)

    # -- the flow --------------------------------------------------------------------------

    def run(self) -> Result:
        try:
            return self._run()
        except GateTimeout as exc:
            return Result(Status.UNKNOWN, f"{self.tool} {self.list_step} not run: waited "
                                          f"until the check's deadline for {exc.holder}'s use "
                                          f"of the same repository", details=self.details)

    def _run(self) -> Result:
        p, ctx = self.p, self.ctx
        args, access = self.list_args()
        res = self.run_tool(args, access)
        if res.timed_out:
            return Result(Status.UNKNOWN, f"{self.tool} {self.list_step} timed out for "
                                          f"{self.where}")
        if not res.ok:
            return self.failed(self.classify(res), self.list_step)
        try:
            snaps = self.parse_list(res.stdout)
        except ParseError as exc:
            return Result(Status.UNKNOWN, f"unexpected {self.tool} {self.list_step} output: "
                                          f"{exc}")
        metrics: dict[str, float] = {"snapshot_count": len(snaps)}
        if not snaps:
            return Result(Status.CRIT, f"no {self.noun}s{self.filter_text()} in {self.where}",
                          metrics=metrics, details=self.details)
        latest = snaps[-1]
        previous = self.previous_of(snaps)
        self.details.update(self.latest_details(latest))
        metrics["age_hours"] = round((ctx.now - latest.time).total_seconds() / 3600, 3)
        findings = [judge_age(f"latest {self.noun} {latest.short_id}", latest.time, ctx.now, p)]
        findings[0].text += f" ({len(snaps)} {self.noun}{'s' if len(snaps) != 1 else ''})"
        self.fill_sizes(latest, previous, metrics)
        if latest.size is not None:
            metrics["total_size"] = latest.size
            self.details["total_size"] = format_size(latest.size)
        shrink = judge_shrink(latest, previous, p.warn_shrink_pct)
        if shrink:
            findings.append(shrink)
        if p.integrity and due(ctx, "integrity", p.integrity_every):
            findings.append(self.integrity(metrics))
        if p.restore_sample and due(ctx, "restore", p.restore_every):
            findings.append(self.restore(latest, metrics))
        return combine(findings, metrics, self.details)

    def integrity(self, metrics: dict[str, float]) -> Finding:
        """The repository check, run once per repository per run: hosts sharing the
        repository wait for it (rather than collide on its exclusive lock) and share
        its outcome when they would run the same command with the same credentials."""
        p, ctx = self.p, self.ctx
        argv = self.argv(*self.integrity_args())
        key = outcome_key(self.identity, argv, self.env, p.sudo)
        try:
            shared = COORDINATOR.once_per_run(
                ctx.run_id, key, ctx.host.name, ctx.remaining(),
                lambda: self.run_argv(argv, "exclusive"))
        except GateTimeout as exc:
            return Finding(Status.UNKNOWN, f"integrity check not run: waited until the "
                                           f"check's deadline for {exc.holder}'s check of "
                                           "the same repository")
        res = shared.result
        by = (f" (shared: the repository was checked once in this run, for "
              f"{shared.ran_for})" if shared.ran_for else "")
        if shared.ran_for:
            self.details["integrity_checked_for"] = shared.ran_for
        if res.timed_out:
            return Finding(Status.UNKNOWN, f"{self.tool} check timed out after "
                                           f"{p.tool_timeout:g}s{by}")
        skipped = self.integrity_skipped(res)
        if skipped is not None:
            message = self.lock_text(skipped) if skipped.kind == "locked" else skipped.message
            return Finding(_FAILURE_STATUS.get(skipped.kind, Status.UNKNOWN),
                           f"integrity check skipped: {message}")
        self.integrity_ran()
        report = self.parse_integrity(res)
        metrics["integrity_ok"] = 1 if report.ok else 0
        mark_done(ctx, "integrity", report.ok)
        if report.ok:
            return Finding(Status.OK, self.integrity_ok_text() + by)
        self.details["check_errors"] = report.errors
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        return Finding(Status.CRIT, f"{self.tool} check found errors: {report.errors[0]}"
                                    f"{more}{by}")

    def restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        try:
            return self._restore(latest, metrics)
        except GateTimeout as exc:
            return Finding(Status.UNKNOWN, f"test {self.restore_word} not run: waited until "
                                           f"the check's deadline for {exc.holder}'s use of "
                                           "the same repository")
        except (RuntimeError, TransportError) as exc:
            return Finding(Status.UNKNOWN, f"test restore could not run: {exc}")

    def _restore(self, latest: Snapshot, metrics: dict[str, float]) -> Finding:
        p, ctx = self.p, self.ctx
        args, access = self.files_args(latest)
        listing = self.run_tool(args, access)
        if not listing.ok:
            metrics["restore_ok"] = 0
            return Finding(Status.CRIT, f"test {self.restore_word} failed listing files: "
                                        f"{self.classify(listing).message}")
        sample = pick_sample(self.parse_files(listing.stdout), p.restore_sample,
                             p.restore_max_file_size, f"{latest.id}:{ctx.run_id}:{ctx.now}")
        wanted = [n for n in sample if n.size >= 0]
        if not wanted:
            if not sample:
                return Finding(Status.OK, f"no files small enough to test-{self.restore_word}")
            report = compare_restore(sample, [None] * len(sample), [None] * len(sample))
            metrics["restore_ok"] = 0
            return restore_finding(report, len(sample))
        tmp = make_tempdir(ctx, p.sudo)
        try:
            recorded = self.recorded_hashes(latest, wanted, tmp)
            target = f"{tmp}/restore"
            res = self.run_argv(self.restore_command(latest, wanted, target), "shared")
            if res.exit_code != 0 or res.timed_out:
                failure = self.classify(res)
                if failure.kind == "locked":
                    return Finding(Status.WARN, f"test {self.restore_word} skipped: "
                                                f"{self.lock_text(failure)}")
                metrics["restore_ok"] = 0
                mark_done(ctx, "restore", False)
                why = "timed out" if res.timed_out else failure.message
                return Finding(Status.CRIT, f"test restore FAILED: {self.tool} "
                                            f"{self.restore_step}: {why}")
            restored = stat_and_hash(ctx, [self.restored_path(target, n) for n in sample],
                                     p.sudo)
            live = stat_and_hash(ctx, [self.live_path(n) for n in sample], p.sudo)
        finally:
            remove_tempdir(ctx, tmp, p.sudo)
        report = compare_restore(sample, restored, live, recorded,
                                 tool_checked=bool(self.tool_check))
        self.details["restore"] = report.files
        metrics["restore_ok"] = 0 if report.failures else 1
        mark_done(ctx, "restore", not report.failures)
        return restore_finding(report, len(sample), self.tool_check)


def secret_env(values: Mapping[str, Any]) -> dict[str, str]:
    """``env`` params with their secret values revealed, for the child's environment."""
    return {k: v.get_secret_value() for k, v in values.items()}
