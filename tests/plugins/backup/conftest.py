"""Fixtures for backup tests: real restic/borg repositories in a temp dir, a recording
local transport, and isolated tool caches."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from upkeeper import CommandResult, Host
from upkeeper.testing import make_host
from upkeeper.transport.local import LocalTransport

DATA = Path(__file__).resolve().parents[2] / "data" / "backup"
RESTIC_PASSWORD = "s3cr3t-Restic-pw!42"
BORG_PASSPHRASE = "s3cr3t-Borg-pass#17"
#: Hosts backing up to one shared repository (told apart by restic host / borg archive name).
FLEET = ("web01", "web02", "web03", "web04")

needs_restic = pytest.mark.skipif(shutil.which("restic") is None,
                                  reason="restic is not installed (apt-get install restic)")
needs_borg = pytest.mark.skipif(shutil.which("borg") is None,
                                reason="borg is not installed (apt-get install borgbackup)")


class RecordingTransport(LocalTransport):
    """The real local transport, remembering each command line and its environment."""

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self.commands: list[str] = []
        self.envs: list[dict[str, str]] = []
        self.results: list[CommandResult] = []

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        res = super().run(command, timeout=timeout, sudo=sudo, stdin=stdin, env=env)
        self.commands.append(res.command)
        self.results.append(res)
        self.envs.append(dict(env or {}))
        return res


def restore_dirs(transport: RecordingTransport) -> list[Path]:
    """The temporary directories the check made for test restores."""
    return [Path(r.stdout.strip()) for r in transport.results if r.command.startswith("mktemp")]


@pytest.fixture
def local_host() -> Host:
    return make_host("localhost", vars={"ansible_connection": "local"})


@pytest.fixture
def transport(local_host: Host) -> RecordingTransport:
    return RecordingTransport(local_host)


@pytest.fixture(autouse=True)
def _tool_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep restic's and borg's caches and security dirs inside the test's tmp dir."""
    monkeypatch.setenv("RESTIC_CACHE_DIR", str(tmp_path / "restic-cache"))
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "borg-base"))
    # Children of the local transport inherit only what UPKEEPER_PASS_ENV names.
    monkeypatch.setenv("UPKEEPER_PASS_ENV", "RESTIC_CACHE_DIR BORG_BASE_DIR")
    for name in ("RESTIC_PASSWORD", "RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE",
                 "BORG_PASSPHRASE", "BORG_REPO", "BORG_PASSCOMMAND"):
        monkeypatch.delenv(name, raising=False)


def make_tree(root: Path) -> Path:
    """A small source tree: a 300 kB binary, text files, a name with spaces and brackets."""
    (root / "etc").mkdir(parents=True)
    (root / "home" / "alice" / "My Docs").mkdir(parents=True)
    (root / "etc" / "big.bin").write_bytes(os.urandom(300_000))
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc" / "motd").write_text("welcome\n" * 20)
    (root / "home" / "alice" / "My Docs" / "notes [1].txt").write_text("remember the milk\n")
    return root


@dataclass
class Repo:
    """A real repository on disk with the tree it backs up."""

    path: Path
    src: Path
    secret: str
    env: dict[str, str] = field(default_factory=dict)

    def tool(self, *args: str, stdin: str | None = None, check: bool = True,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env={**os.environ, **self.env}, input=stdin,
                              capture_output=True, text=True, check=check, timeout=120,
                              cwd=cwd)


def _init_restic(path: Path) -> Repo:
    repo = Repo(path, path, RESTIC_PASSWORD)
    repo.env = {"RESTIC_REPOSITORY": str(path), "RESTIC_PASSWORD": RESTIC_PASSWORD}
    repo.tool("restic", "--no-cache", "init")
    return repo


def _init_borg(path: Path, base: Path) -> Repo:
    repo = Repo(path, path, BORG_PASSPHRASE)
    repo.env = {"BORG_REPO": str(path), "BORG_PASSPHRASE": BORG_PASSPHRASE,
                "BORG_BASE_DIR": str(base)}
    repo.tool("borg", "init", "--encryption=repokey-blake2")
    del repo.env["BORG_BASE_DIR"]
    return repo


def copy_repo(template: Repo, dest: Path, src: Path | None = None) -> Repo:
    shutil.copytree(template.path, dest)
    env = {k: (str(dest) if v == str(template.path) else v) for k, v in template.env.items()}
    return Repo(dest, src or template.src, template.secret, env)


def restic_backup(repo: Repo, host: str = "web01", *extra: str) -> None:
    repo.tool("restic", "--no-cache", "backup", "--host", host, "--tag", "daily", *extra,
              str(repo.src))


def borg_create(repo: Repo, archive: str = "web01-1") -> None:
    repo.tool("borg", "create", f"::{archive}", str(repo.src))


# Repositories are made once per session (restic's init alone takes seconds of scrypt)
# and copied into each test's tmp_path.

@pytest.fixture(scope="session")
def _restic_empty(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return _init_restic(tmp_path_factory.mktemp("restic-empty") / "repo")


@pytest.fixture(scope="session")
def _borg_empty(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("borg-empty")
    return _init_borg(root / "repo", root / "borg-base")


@pytest.fixture(scope="session")
def _restic_template(_restic_empty: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("restic-template")
    repo = copy_repo(_restic_empty, root / "restic-repo", make_tree(root / "src"))
    restic_backup(repo)
    return repo


@pytest.fixture(scope="session")
def _borg_template(_borg_empty: Repo, tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("borg-template")
    repo = copy_repo(_borg_empty, root / "borg-repo", make_tree(root / "src"))
    repo.env["BORG_BASE_DIR"] = str(root / "borg-base")
    borg_create(repo)
    del repo.env["BORG_BASE_DIR"]
    return repo


@pytest.fixture(scope="session")
def _restic_fleet_template(_restic_template: Repo,
                           tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = copy_repo(_restic_template, tmp_path_factory.mktemp("restic-fleet") / "restic-repo")
    for host in FLEET[1:]:
        restic_backup(repo, host)
    return repo


@pytest.fixture(scope="session")
def _borg_fleet_template(_borg_template: Repo,
                         tmp_path_factory: pytest.TempPathFactory) -> Repo:
    root = tmp_path_factory.mktemp("borg-fleet")
    repo = copy_repo(_borg_template, root / "borg-repo")
    repo.env["BORG_BASE_DIR"] = str(root / "borg-base")
    for host in FLEET[1:]:
        borg_create(repo, f"{host}-1")
    del repo.env["BORG_BASE_DIR"]
    return repo


@pytest.fixture
def restic_repo(_restic_template: Repo, tmp_path: Path) -> Repo:
    """A copy of a session-wide repository: change the repo freely, never the source tree."""
    return copy_repo(_restic_template, tmp_path / "restic-repo")


@pytest.fixture
def borg_repo(_borg_template: Repo, tmp_path: Path) -> Repo:
    """A copy of a session-wide repository: change the repo freely, never the source tree."""
    return copy_repo(_borg_template, tmp_path / "borg-repo")


@pytest.fixture
def restic_fleet(_restic_fleet_template: Repo, tmp_path: Path) -> Repo:
    """One repository with a snapshot of each host in FLEET (the shared source tree)."""
    return copy_repo(_restic_fleet_template, tmp_path / "restic-repo")


@pytest.fixture
def borg_fleet(_borg_fleet_template: Repo, tmp_path: Path) -> Repo:
    """One repository with an archive HOST-1 of each host in FLEET."""
    return copy_repo(_borg_fleet_template, tmp_path / "borg-repo")


@pytest.fixture
def own_restic_repo(_restic_empty: Repo, tmp_path: Path) -> Repo:
    """A repository with its own source tree, for tests that change live files: a copy of
    the session's empty repository and one backup of a fresh tree."""
    repo = copy_repo(_restic_empty, tmp_path / "own" / "restic-repo", make_tree(tmp_path / "own"
                                                                              / "src"))
    restic_backup(repo)
    return repo


@pytest.fixture
def own_borg_repo(_borg_empty: Repo, tmp_path: Path) -> Repo:
    """A repository with its own source tree, for tests that change live files."""
    repo = copy_repo(_borg_empty, tmp_path / "own" / "borg-repo", make_tree(tmp_path / "own"
                                                                          / "src"))
    borg_create(repo)
    return repo


def wrapper(path: Path, real: str, after: str = "", log: Path | None = None) -> str:
    """An executable standing in for ``real``: logs its arguments to ``log``, runs the real
    tool, then runs the shell code ``after`` (with the tool's arguments) if that succeeded."""
    logging = f'printf "%s\\n" "$*" >> {shlex.quote(str(log))}\n' if log else ""
    path.write_text(f"#!/bin/sh\n{logging}{shlex.quote(real)} \"$@\" || exit $?\n{after}\n")
    path.chmod(0o755)
    return str(path)


def assert_secret_hidden(secret: str, results: Sequence[Any],
                         transport: RecordingTransport | None = None) -> None:
    """The secret is in no result field and on no command line; it did travel in env."""
    for r in results:
        assert secret not in json.dumps(r.to_dict(), default=str)
        assert secret not in repr(r)
    if transport is not None:
        assert transport.commands, "no command was run"
        for cmd in transport.commands:
            assert secret not in cmd
        assert any(secret in env.values() for env in transport.envs)


@pytest.fixture
def data() -> Path:
    return DATA

