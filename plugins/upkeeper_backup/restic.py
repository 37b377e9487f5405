"""``backup.restic``: freshness, shrinkage, ``restic check`` and a sampled test restore."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field, SecretStr, field_validator, model_validator

from upkeeper import Check, CheckContext, CommandResult, Result
from upkeeper.argv import check_operand, check_path
from upkeeper_backup.common import RepoParams, check_program, scrub, validate_subset
from upkeeper_backup.gate import Access
from upkeeper_backup.parsers import (
    FileNode,
    IntegrityReport,
    ParseError,
    Snapshot,
    ToolFailure,
    classify_restic_failure,
    parse_restic_check,
    parse_restic_ls,
    parse_restic_snapshots,
    parse_restic_stats,
)
from upkeeper_backup.restore import stat_and_hash
from upkeeper_backup.tool import RepoRun, secret_env

_SIZE_CACHE_KEY = "snapshot_sizes"
#: Runs a command with its stdout in a file: ``sh -c _TO_FILE sh FILE CMD...``.
_TO_FILE = 'out=$1; shift; exec "$@" > "$out"'


class ResticParams(RepoParams):
    password: SecretStr | None = Field(
        None, description="repository password (template it from a vault var); sent in "
                          "the environment, never on a command line")
    password_file: str | None = Field(None, description="password file on the host")
    password_command: str | None = Field(
        None, description="command printing the password (run by restic through the "
                          "shell, as written: a trusted value, like system.command)")
    host: str | None = Field(None, description="only snapshots of this hostname")
    paths: list[str] = Field(default_factory=list, description="only snapshots of these paths")
    tags: list[str] = Field(default_factory=list,
                            description="only snapshots carrying all these tags")
    read_data_subset: int | str | None = Field(
        None, description="also read pack data: a number t reads 1/t of it per run, "
                          "rotating so all data is read over t runs; or n/t, 10%, 2G")
    restic_bin: str = Field("restic", description="restic executable on the host")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str | None) -> str | None:
        return None if v is None else check_operand(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return [check_operand(t) for t in v]

    @field_validator("paths")
    @classmethod
    def _paths(cls, v: list[str]) -> list[str]:
        return [check_path(x) for x in v]

    @field_validator("password_file")
    @classmethod
    def _password_file(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @field_validator("restic_bin")
    @classmethod
    def _bin(cls, v: str) -> str:
        return check_program(v)

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


def restic_env(p: ResticParams) -> dict[str, str]:
    """The environment restic gets: repository and password, never on a command line."""
    env = secret_env(p.env)
    env["RESTIC_REPOSITORY"] = p.repository
    if p.password is not None:
        env["RESTIC_PASSWORD"] = p.password.get_secret_value()
    elif p.password_file is not None:
        env["RESTIC_PASSWORD_FILE"] = p.password_file
    elif p.password_command is not None:
        env["RESTIC_PASSWORD_COMMAND"] = p.password_command
    return env


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
        return scrub(ResticRun(ctx).run(), ctx.params, secrets)


class ResticRun(RepoRun[ResticParams]):
    """restic's commands and parsers for the shared flow."""

    tool = "restic"
    noun = "snapshot"
    list_step = "snapshots"
    restore_step = "restore"
    restore_word = "restore"
    tool_check = "restic restore --verify"

    def tool_env(self) -> dict[str, str]:
        return restic_env(self.p)

    def argv(self, *args: str) -> list[str]:
        return [self.p.restic_bin, *args]

    def classify(self, res: CommandResult) -> ToolFailure:
        return classify_restic_failure(res.exit_code, res.stderr)

    def list_args(self) -> tuple[list[str], Access]:
        p = self.p
        # Values go as --flag=value: never mistaken for another flag, whatever they hold.
        args = ["snapshots", "--json", "--no-lock"]
        if p.host:
            args.append(f"--host={p.host}")
        args += [f"--path={path}" for path in p.paths]
        if p.tags:
            args.append(f"--tag={','.join(p.tags)}")
        return args, "none"

    def parse_list(self, stdout: str) -> list[Snapshot]:
        return parse_restic_snapshots(stdout)

    def filter_text(self) -> str:
        parts = [f"host={self.p.host}"] if self.p.host else []
        parts += [f"path={x}" for x in self.p.paths] + [f"tag={x}" for x in self.p.tags]
        return f" matching {' '.join(parts)}" if parts else ""

    def previous_of(self, snaps: Sequence[Snapshot]) -> Snapshot | None:
        latest = snaps[-1]
        return next((s for s in reversed(snaps[:-1]) if s.same_set(latest)), None)

    def latest_details(self, latest: Snapshot) -> dict[str, Any]:
        return {"latest": latest.id, "latest_time": latest.time.isoformat(),
                "hostname": latest.hostname, "paths": latest.paths}

    def fill_sizes(self, latest: Snapshot, previous: Snapshot | None,
                   metrics: dict[str, float]) -> None:
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
                res = self.run_tool(["stats", "--json", "--no-lock", "--", snap.id])
                if not res.ok:
                    self.details["stats_error"] = self.classify(res).message
                    snap.size = snap.files = None
                    continue
                try:
                    snap.size, snap.files = parse_restic_stats(res.stdout)
                except ParseError as exc:
                    self.details["stats_error"] = str(exc)
                    continue
            fresh[snap.id] = [snap.size, snap.files]
        self.ctx.history.set_state(_SIZE_CACHE_KEY, fresh)

    def integrity_args(self) -> list[str]:
        subset = self.p.read_data_subset
        if isinstance(subset, int):
            n = int(self.ctx.history.get_state("read_data_next") or 1)
            n = n if 1 <= n <= subset else 1
            self.details["read_data_subset"] = f"{n}/{subset}"
            return ["check", f"--read-data-subset={n}/{subset}"]
        if subset:
            self.details["read_data_subset"] = subset
            return ["check", f"--read-data-subset={subset}"]
        return ["check"]

    def integrity_skipped(self, res: CommandResult) -> ToolFailure | None:
        if res.exit_code == 0:
            return None
        failure = self.classify(res)
        return None if failure.kind == "error" else failure

    def integrity_ran(self) -> None:
        subset = self.p.read_data_subset
        if isinstance(subset, int):
            n = int(str(self.details["read_data_subset"]).split("/")[0])
            self.ctx.history.set_state("read_data_next", n % subset + 1)

    def parse_integrity(self, res: CommandResult) -> IntegrityReport:
        return parse_restic_check(res.stdout + "\n" + res.stderr, res.exit_code)

    def integrity_ok_text(self) -> str:
        subset = self.details.get("read_data_subset")
        return f"restic check OK{f', read data {subset}' if subset else ''}"

    def files_args(self, latest: Snapshot) -> tuple[list[str], Access]:
        return ["ls", "--json", "--no-lock", "--", latest.id], "none"

    def parse_files(self, stdout: str) -> list[FileNode]:
        return parse_restic_ls(stdout)

    def recorded_hashes(self, latest: Snapshot, nodes: Sequence[FileNode],
                        workdir: str) -> dict[str, str]:
        """SHA-256 of each file as the repository holds it: ``restic dump`` reads it back
        from the repository (checking every chunk against its recorded ID), apart from
        the restore under test. Where that fails, ``restore --verify`` still vouches."""
        done: list[tuple[FileNode, str]] = []
        for i, node in enumerate(nodes):
            dest = f"{workdir}/record.{i}"
            res = self.ctx.run(["sh", "-c", _TO_FILE, "sh", dest,
                                *self.argv("dump", "--no-lock", "--", latest.id, node.path)],
                               env=self.env, sudo=self.p.sudo, timeout=self.p.tool_timeout)
            if res.ok:
                done.append((node, dest))
            else:
                self.details["record_error"] = self.classify(res).message
        states = stat_and_hash(self.ctx, [dest for _, dest in done], self.p.sudo)
        return {node.path: st.sha256 for (node, _), st in zip(done, states, strict=True)
                if st is not None and st.size == node.size}

    def restore_command(self, latest: Snapshot, nodes: Sequence[FileNode],
                        target: str) -> list[str]:
        includes = [f"--include={_escape_pattern(n.path)}" for n in nodes]
        return self.argv("restore", f"--target={target}", "--verify", *includes, "--",
                         latest.id)

    def restored_path(self, target: str, node: FileNode) -> str:
        return target + node.path

    def live_path(self, node: FileNode) -> str:
        return node.path


def _escape_pattern(path: str) -> str:
    """restic --include takes glob patterns; escape so the path matches literally."""
    out = path
    for ch in ("\\", "*", "?", "["):
        out = out.replace(ch, "\\" + ch)
    return out
