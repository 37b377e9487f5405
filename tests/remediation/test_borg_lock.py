"""backup.borg.break_lock on a real borg repository: another host's lock (a borg killed
in its own UTS namespace) is broken once old, kept while fresh; a live holder on this
host is never touched; --check changes nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
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
from upkeeper_backup.borg import BorgCheck, BorgParams
from upkeeper_backup.borgfix import BorgBreakLock

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("borg") is None, reason="no borg"),
              pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                 reason="needs unshare -u (root) for another hostname")]
PASSPHRASE = "borg-lock-test-pw-5521"


class Repo:
    """A repository with one archive; with ``template``, a copy of that one (made once
    per module)."""

    def __init__(self, root: Path, template: Path | None = None) -> None:
        self.path = root / "repo"
        self.env = {**os.environ, "BORG_REPO": str(self.path),
                    "BORG_PASSPHRASE": PASSPHRASE, "BORG_BASE_DIR": str(root / "base")}
        self.procs: list[subprocess.Popen[bytes]] = []
        if template is not None:
            shutil.copytree(template, self.path)
            return
        subprocess.run(["borg", "init", "-e", "repokey-blake2"], env=self.env, check=True,
                       capture_output=True)
        (root / "src").mkdir()
        (root / "src" / "f").write_text("data\n")
        subprocess.run(["borg", "create", "::first", str(root / "src")], env=self.env,
                       check=True, capture_output=True, cwd=root)

    def lock_dir(self) -> Path:
        return self.path / "lock.exclusive"

    def hold(self, *prefix: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*prefix, "borg", "create", f"::held-{len(self.procs)}",
                                 "-"], env=self.env, stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        wait_for(lambda: (self.path / "lock.roster").exists() and self.lock_dir().exists(),
                 timeout=30, what="borg's lock")
        return proc

    def other_host_lock(self, age_s: float) -> None:
        proc = self.hold("unshare", "-u", "sh", "-c", 'hostname otherhost && exec "$@"',
                         "sh")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        then = time.time() - age_s
        os.utime(self.lock_dir(), (then, then))

    def params(self, **extra: Any) -> BorgParams:
        return BorgParams.model_validate({"repository": str(self.path),
                                          "passphrase": PASSPHRASE, "restore_sample": 0,
                                          "lock_wait": 1, **extra})


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Repo(tmp_path_factory.mktemp("borg-lock-template")).path


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _template: Path) -> Iterator[Repo]:
    monkeypatch.setenv("BORG_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.setenv("UPKEEPER_PASS_ENV", "BORG_BASE_DIR")
    r = Repo(tmp_path, _template)
    yield r
    for proc in r.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _pass(tmp_path: Path, repo: Repo, *, check_mode: bool = False,
          check: dict[str, Any] | None = None) -> tuple[FixPass, History]:
    transport = LocalTransport(Host("localhost", vars={"ansible_connection": "local"}))
    fix_pass, history, failing = fix_after_real_check(
        tmp_path / "h.sqlite3", {"fix": BorgBreakLock.name, "tier": "auto"}, BorgBreakLock,
        BorgBreakLock.Params.model_validate({}), BorgCheck, repo.params(**(check or {})),
        transport, check_mode=check_mode)
    assert failing.status is Status.WARN and "repository is locked" in failing.summary, \
        failing.summary
    return fix_pass, history


def test_an_old_lock_of_another_host_is_broken(tmp_path: Path, repo: Repo) -> None:
    repo.other_host_lock(age_s=2 * 3600)
    fix_pass, history = _pass(tmp_path, repo)
    [outcome] = fix_pass.outcomes
    assert outcome.outcome == "fixed", (outcome.summary, outcome.after)
    assert not repo.lock_dir().exists()
    [plan] = AuditLog(history).records(kinds=["plan"])
    assert plan.data["plan"]["changes"][0]["holder"].startswith("otherhost@")
    assert PASSPHRASE not in str([r.data for r in AuditLog(history).records()])


def test_a_fresh_lock_of_another_host_is_kept(tmp_path: Path, repo: Repo) -> None:
    repo.other_host_lock(age_s=60)
    fix_pass, _ = _pass(tmp_path, repo)
    assert [o.outcome for o in fix_pass.outcomes] == ["nothing-to-do"]
    assert repo.lock_dir().exists()


def test_a_live_holder_on_this_host_is_kept_however_old(tmp_path: Path, repo: Repo) -> None:
    repo.hold()
    then = time.time() - 5 * 3600
    os.utime(repo.lock_dir(), (then, then))
    fix_pass, _ = _pass(tmp_path, repo)
    assert [o.outcome for o in fix_pass.outcomes] == ["nothing-to-do"]
    assert repo.lock_dir().exists()


def test_check_mode_and_shared_change_nothing(tmp_path: Path, repo: Repo) -> None:
    repo.other_host_lock(age_s=2 * 3600)
    before = sorted(p.name for p in repo.lock_dir().iterdir())
    planned, _ = _pass(tmp_path, repo, check_mode=True)
    assert [o.outcome for o in planned.outcomes] == ["planned"]
    shared, _ = _pass(tmp_path, repo, check={"shared": True})
    assert [o.outcome for o in shared.outcomes] == ["refused"]
    assert sorted(p.name for p in repo.lock_dir().iterdir()) == before
