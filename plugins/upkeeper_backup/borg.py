"""``backup.borg``: freshness, shrinkage, ``borg check`` and a sampled test extract."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from upkeeper import Check, CheckContext, CommandResult, Result
from upkeeper.argv import check_operand
from upkeeper_backup.common import BackupDuration, RepoParams, check_program, scrub
from upkeeper_backup.gate import Access
from upkeeper_backup.locks import describe_lock, parse_borg_roster
from upkeeper_backup.parsers import (
    FileNode,
    IntegrityReport,
    ParseError,
    Snapshot,
    ToolFailure,
    classify_borg_failure,
    parse_borg_archives,
    parse_borg_check,
    parse_borg_files,
    parse_borg_repo_size,
)
from upkeeper_backup.tool import RepoRun, secret_env

#: Who holds a local repository's lock, and since when (borg names neither).
_LOCK_SCRIPT = ('cat -- "$1/lock.roster" 2>/dev/null; echo; '
                'stat -c %Y -- "$1/lock.exclusive" 2>/dev/null; date +%s')
#: borg extract writes into the working directory: make and enter the target, then exec.
_IN_DIR = 'mkdir -p -- "$1" && cd -- "$1" && shift && exec "$@"'


class BorgParams(RepoParams):
    passphrase: SecretStr | None = Field(
        None, description="repository passphrase (template it from a vault var); sent in "
                          "the environment, never on a command line")
    passcommand: str | None = Field(
        None, description="command printing the passphrase (BORG_PASSCOMMAND, run by borg "
                          "as written: a trusted value, like system.command)")
    glob_archives: str | None = Field(None, description="only archives matching this glob, "
                                                        "e.g. 'web01-*'")
    verify_data: bool = Field(False, description="borg check --verify-data (reads all data)")
    max_duration: BackupDuration | None = Field(
        None, description="partial repository-only check of at most this long; borg resumes "
                          "where it stopped on the next run")
    lock_wait: int = Field(30, ge=0, description="seconds to wait for a repository lock")
    borg_bin: str = Field("borg", description="borg executable on the host")

    @field_validator("glob_archives")
    @classmethod
    def _glob(cls, v: str | None) -> str | None:
        return None if v is None else check_operand(v)

    @field_validator("borg_bin")
    @classmethod
    def _bin(cls, v: str) -> str:
        return check_program(v)

    @model_validator(mode="after")
    def _no_two_secrets(self) -> BorgParams:
        if self.passphrase is not None and self.passcommand is not None:
            raise ValueError("give passphrase or passcommand, not both")
        if self.verify_data and self.max_duration is not None:
            raise ValueError("verify_data and max_duration cannot be combined (borg refuses)")
        return self


def borg_env(p: BorgParams) -> dict[str, str]:
    """The environment borg gets: repository and passphrase, never on a command line."""
    # Naive borg 1.x timestamps are local time: TZ=UTC makes them UTC.
    env = {"BORG_RELOCATED_REPO_ACCESS_IS_OK": "no",
           "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "no",
           **secret_env(p.env), "BORG_REPO": p.repository, "TZ": "UTC"}
    if p.passphrase is not None:
        env["BORG_PASSPHRASE"] = p.passphrase.get_secret_value()
    elif p.passcommand is not None:
        env["BORG_PASSCOMMAND"] = p.passcommand
    return env


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
        return scrub(BorgRun(ctx).run(), ctx.params, secrets)


class BorgRun(RepoRun[BorgParams]):
    """borg's commands and parsers for the shared flow."""

    tool = "borg"
    noun = "archive"
    list_step = "list"
    restore_step = "extract"
    restore_word = "extract"

    def tool_env(self) -> dict[str, str]:
        return borg_env(self.p)

    def argv(self, *args: str) -> list[str]:
        cmd, *rest = args
        return [self.p.borg_bin, cmd, "--log-json", "--lock-wait", str(self.p.lock_wait), *rest]

    def classify(self, res: CommandResult) -> ToolFailure:
        return classify_borg_failure(res.exit_code, res.stderr)

    def lock_text(self, failure: ToolFailure) -> str:
        """borg's LockTimeout names neither holder nor age: a local repository's roster
        and lock directory tell both."""
        repo = self.p.repository.removeprefix("file://")
        if not repo.startswith("/"):
            return failure.message
        res = self.ctx.run(["sh", "-c", _LOCK_SCRIPT, "sh", repo], sudo=self.p.sudo,
                           timeout=30)
        lines = res.stdout.strip().splitlines()
        numbers = [int(x) for x in lines if x.strip().isdigit()]
        roster = next((x for x in lines if x.lstrip().startswith("{")), "")
        now = numbers[-1] if numbers else time.time()
        since = numbers[-2] if len(numbers) >= 2 else None
        info = parse_borg_roster(roster, since, now) if roster else None
        return describe_lock("borg", info) if info else failure.message

    def selection(self) -> list[str]:
        return [f"--glob-archives={self.p.glob_archives}"] if self.p.glob_archives else []

    def list_args(self) -> tuple[list[str], Access]:
        return ["list", "--json", *self.selection()], "shared"

    def parse_list(self, stdout: str) -> list[Snapshot]:
        return parse_borg_archives(stdout)

    def filter_text(self) -> str:
        return f" matching {self.p.glob_archives}" if self.p.glob_archives else ""

    def previous_of(self, snaps: Sequence[Snapshot]) -> Snapshot | None:
        return snaps[-2] if len(snaps) > 1 else None

    def latest_details(self, latest: Snapshot) -> dict[str, Any]:
        return {"latest": latest.name, "latest_time": latest.time.isoformat()}

    def fill_sizes(self, latest: Snapshot, previous: Snapshot | None,
                   metrics: dict[str, float]) -> None:
        last = "2" if previous is not None else "1"
        # borg info locks the local cache too: one at a time per repository.
        res = self.run_tool(["info", "--json", "--last", last, *self.selection()],
                            "exclusive")
        if not res.ok:
            self.details["info_error"] = self.classify(res).message
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

    def integrity_args(self) -> list[str]:
        p = self.p
        args = ["check"]
        if p.verify_data:
            args.append("--verify-data")
        if p.max_duration is not None:
            args += ["--repository-only",
                     f"--max-duration={max(1, int(p.max_duration.total_seconds()))}"]
        return args

    def integrity_skipped(self, res: CommandResult) -> ToolFailure | None:
        if res.exit_code != 2:
            return None
        failure = self.classify(res)
        return None if failure.kind == "error" else failure

    def parse_integrity(self, res: CommandResult) -> IntegrityReport:
        return parse_borg_check(res.stderr, res.exit_code)

    def integrity_ok_text(self) -> str:
        what = ("verify-data" if self.p.verify_data else
                "partial repository" if self.p.max_duration is not None else "")
        return f"borg check {what + ' ' if what else ''}OK"

    def files_args(self, latest: Snapshot) -> tuple[list[str], Access]:
        return ["list", "--json-lines", f"::{latest.name}"], "shared"

    def parse_files(self, stdout: str) -> list[FileNode]:
        return parse_borg_files(stdout)

    def recorded_hashes(self, latest: Snapshot, nodes: Sequence[FileNode],
                        workdir: str) -> dict[str, str]:
        """The SHA-256 borg computes from the archive's chunks for each sampled file."""
        paths = [n.path.lstrip("/") for n in nodes]
        res = self.run_tool(["list", "--json-lines", "--format={size}{sha256}",
                             f"::{latest.name}", "--", *paths], "shared")
        if not res.ok:
            self.details["record_error"] = self.classify(res).message
            return {}
        wanted = set(paths)
        return {f.path: f.sha256 for f in parse_borg_files(res.stdout)
                if f.sha256 and f.path in wanted}

    def restore_command(self, latest: Snapshot, nodes: Sequence[FileNode],
                        target: str) -> list[str]:
        paths = [n.path.lstrip("/") for n in nodes]
        return ["sh", "-c", _IN_DIR, "sh", target,
                *self.argv("extract", f"::{latest.name}", "--", *paths)]

    def restored_path(self, target: str, node: FileNode) -> str:
        return f"{target}/{node.path.lstrip('/')}"

    def live_path(self, node: FileNode) -> str:
        return f"/{node.path.lstrip('/')}"
