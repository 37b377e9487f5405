"""Fixtures for backup tests: real restic/borg repositories in a temp dir, a recording
local transport, and isolated tool caches."""

from __future__ import annotations

import json
import os
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
             ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env={**os.environ, **self.env}, input=stdin,
                              capture_output=True, text=True, check=check, timeout=120)


def _new_restic(root: Path) -> Repo:
    src = make_tree(root / "src")
    repo = Repo(root / "restic-repo", src, RESTIC_PASSWORD)
    repo.env = {"RESTIC_REPOSITORY": str(repo.path), "RESTIC_PASSWORD": RESTIC_PASSWORD}
    repo.tool("restic", "--no-cache", "init")
    repo.tool("restic", "--no-cache", "backup", "--host", "web01", "--tag", "daily", str(src))
    return repo


def _new_borg(root: Path) -> Repo:
    src = make_tree(root / "src")
    repo = Repo(root / "borg-repo", src, BORG_PASSPHRASE)
    repo.env = {"BORG_REPO": str(repo.path), "BORG_PASSPHRASE": BORG_PASSPHRASE,
                "BORG_BASE_DIR": str(root / "borg-base")}
    repo.tool("borg", "init", "--encryption=repokey-blake2")
    repo.tool("borg", "create", "::web01-1", str(src))
    del repo.env["BORG_BASE_DIR"]
    return repo


def _copy(template: Repo, dest: Path) -> Repo:
    shutil.copytree(template.path, dest)
    env = {k: (str(dest) if v == str(template.path) else v) for k, v in template.env.items()}
    return Repo(dest, template.src, template.secret, env)


@pytest.fixture(scope="session")
def _restic_template(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return _new_restic(tmp_path_factory.mktemp("restic-template"))


@pytest.fixture(scope="session")
def _borg_template(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return _new_borg(tmp_path_factory.mktemp("borg-template"))


@pytest.fixture
def restic_repo(_restic_template: Repo, tmp_path: Path) -> Repo:
    """A copy of a session-wide repository: change the repo freely, never the source tree."""
    return _copy(_restic_template, tmp_path / "restic-repo")


@pytest.fixture
def borg_repo(_borg_template: Repo, tmp_path: Path) -> Repo:
    """A copy of a session-wide repository: change the repo freely, never the source tree."""
    return _copy(_borg_template, tmp_path / "borg-repo")


@pytest.fixture
def own_restic_repo(tmp_path: Path) -> Repo:
    """A repository with its own source tree, for tests that change live files."""
    return _new_restic(tmp_path / "own")


@pytest.fixture
def own_borg_repo(tmp_path: Path) -> Repo:
    """A repository with its own source tree, for tests that change live files."""
    return _new_borg(tmp_path / "own")


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

