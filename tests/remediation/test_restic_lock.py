"""backup.restic.unlock on a real restic repository holding a live lock (a running
restic), a stale lock (this host, killed restic) and a fresh lock of another host (a
restic killed in its own UTS namespace named otherhost): only the stale one goes."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.remediation.realcheck import fix_after_real_check
from tests.waiting import wait_for
from upkeeper.models import Host, Status
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.engine import FixPass
from upkeeper.store.history import History
from upkeeper.transport.local import LocalTransport
from upkeeper_backup.lockfix import ResticUnlock
from upkeeper_backup.restic import ResticCheck, ResticParams

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("restic") is None, reason="no restic"),
              pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                 reason="needs unshare -u (root) for another hostname")]
PASSWORD = "lock-test-pw-8731"


class Repo:
    """A repository with one snapshot; with ``template``, a copy of that one (restic's
    init spends seconds in scrypt: made once per module)."""

    def __init__(self, root: Path, template: Path | None = None) -> None:
        self.path = root / "repo"
        self.env = {**os.environ, "RESTIC_REPOSITORY": str(self.path),
                    "RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": str(root / "cache")}
        self.procs: list[subprocess.Popen[bytes]] = []
        if template is not None:
            shutil.copytree(template, self.path)
            return
        subprocess.run(["restic", "init"], env=self.env, check=True, capture_output=True)
        (root / "src").mkdir()
        (root / "src" / "f").write_text("data\n")
        subprocess.run(["restic", "backup", str(root / "src")], env=self.env, check=True,
                       capture_output=True)

    def locks(self) -> set[str]:
        # restic writes a lock as <id>-tmp-<n> and renames it: only finished ones count.
        return {p.name for p in (self.path / "locks").iterdir() if len(p.name) == 64}

    def hold(self, *prefix: str) -> tuple[subprocess.Popen[bytes], str]:
        """A restic holding a lock (reading stdin that never ends) and its lock id."""
        before = self.locks()
        proc = subprocess.Popen([*prefix, "restic", "backup", "--stdin",
                                 "--stdin-filename", "x"], env=self.env,
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for(lambda: self.locks() - before, timeout=30, what="restic's lock file")
        (new,) = self.locks() - before
        return proc, new

    def params(self, **extra: Any) -> ResticParams:
        return ResticParams.model_validate({"repository": str(self.path),
                                            "password": PASSWORD, "restore_sample": 0,
                                            **extra})

    def tree_hash(self) -> str:
        h = hashlib.sha256()
        for p in sorted((self.path / "locks").iterdir()):
            h.update(p.name.encode() + p.read_bytes())
        return h.hexdigest()


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Repo(tmp_path_factory.mktemp("restic-lock-template")).path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _template: Path) -> Iterator[Repo]:
    monkeypatch.setenv("RESTIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UPKEEPER_PASS_ENV", "RESTIC_CACHE_DIR")
    r = Repo(tmp_path, _template)
    yield r
    for proc in r.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def three_locks(repo: Repo) -> tuple[str, str, str]:
    _live_proc, live = repo.hold()
    dead_proc, stale = repo.hold()
    dead_proc.send_signal(signal.SIGKILL)
    dead_proc.wait()
    other_proc, other = repo.hold("unshare", "-u", "sh", "-c",
                                  'hostname otherhost && exec "$@"', "sh")
    other_proc.send_signal(signal.SIGKILL)
    other_proc.wait()
    assert repo.locks() == {live, stale, other}
    return live, stale, other


def _pass(tmp_path: Path, repo: Repo, check_mode: bool = False,
          check: dict[str, Any] | None = None) -> tuple[FixPass, History]:
    transport = LocalTransport(Host("localhost", vars={"ansible_connection": "local",
                                                       "client": "acme"}))
    fix_pass, history, failing = fix_after_real_check(
        tmp_path / "h.sqlite3", {"fix": ResticUnlock.name, "tier": "auto"}, ResticUnlock,
        ResticUnlock.Params.model_validate({}), ResticCheck, repo.params(**(check or {})),
        transport, check_mode=check_mode)
    # the real check, failing on the locks (restic check locks)
    assert failing.status is Status.WARN and "repository is locked" in failing.summary
    return fix_pass, history


def test_only_the_stale_lock_is_removed(tmp_path: Path, repo: Repo) -> None:
    live, stale, other = three_locks(repo)
    fix_pass, history = _pass(tmp_path, repo)
    [outcome] = fix_pass.outcomes
    assert repo.locks() == {live, other}
    # The live and the other host's locks still block `restic check`: verify says so.
    assert outcome.outcome == "failed" and "still says WARN" in outcome.summary
    [plan] = AuditLog(history).records(kinds=["plan"])
    changes = plan.data["plan"]["changes"]
    assert [c["id"] for c in changes] == [stale]
    assert changes[0]["host"] == os.uname().nodename and "no longer runs" in changes[0]["why"]
    commands = [c["command"] for c in AuditLog(history).records(kinds=["apply"])[0]
                .data["commands"]]
    assert all("--remove-all" not in c for c in commands)
    assert PASSWORD not in str([r.data for r in AuditLog(history).records()])


def test_a_stale_lock_alone_is_fixed_and_verified(tmp_path: Path, repo: Repo) -> None:
    dead, stale = repo.hold()
    dead.send_signal(signal.SIGKILL)
    dead.wait()
    fix_pass, history = _pass(tmp_path, repo)
    [outcome] = fix_pass.outcomes
    assert outcome.outcome == "fixed", (outcome.summary, outcome.after)
    assert repo.locks() == set() and outcome.after[0]["status"] == "OK"
    assert AuditLog(history).records(kinds=["plan"])[0].data["plan"]["data"]["ids"] == [
        stale]


def test_check_mode_leaves_the_locks_directory_unchanged(tmp_path: Path, repo: Repo) -> None:
    three_locks(repo)
    before = repo.tree_hash()
    fix_pass, history = _pass(tmp_path, repo, check_mode=True)
    assert [o.outcome for o in fix_pass.outcomes] == ["planned"]
    assert repo.tree_hash() == before
    assert [r.kind for r in AuditLog(history).records()] == ["check-plan"]


def test_shared_repository_is_refused_unless_allowed(tmp_path: Path, repo: Repo) -> None:
    three_locks(repo)
    before = repo.tree_hash()
    fix_pass, _ = _pass(tmp_path, repo, check={"shared": True})
    assert [o.outcome for o in fix_pass.outcomes] == ["refused"]
    assert "marked shared" in fix_pass.outcomes[0].summary
    assert repo.tree_hash() == before
