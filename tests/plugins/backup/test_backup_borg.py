"""backup.borg against real repositories made in a temp dir, through the local transport."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Status
from upkeeper.testing import run_check
from upkeeper_backup.borg import BorgCheck

from .conftest import (
    BORG_PASSPHRASE,
    RecordingTransport,
    Repo,
    assert_secret_hidden,
    needs_borg,
    restore_dirs,
)

pytestmark = [needs_borg]


def check(repo: Repo, transport: RecordingTransport, **params: Any) -> Any:
    kw = {k: params.pop(k) for k in ("history", "now") if k in params}
    base: dict[str, Any] = {"repository": str(repo.path), "passphrase": repo.secret,
                            "restore_sample": 0, "integrity": False, "lock_wait": 1}
    [result] = run_check(BorgCheck, {**base, **params}, host=transport.host,
                         transport=transport, **kw)
    return result


def largest_segment(repo: Path) -> Path:
    return max((p for p in (repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


@pytest.mark.slow
def test_fresh_repository_everything_ok(borg_repo, transport):
    r = check(borg_repo, transport, integrity=True, restore_sample=3, glob_archives="web01-*")
    assert r.status is Status.OK, r.summary
    assert "latest archive web01-1" in r.summary and "borg check OK" in r.summary
    assert "test restore of 3 files OK" in r.summary
    assert r.metrics["snapshot_count"] == 1 and r.metrics["age_hours"] < 1
    assert r.metrics["total_size"] > 300_000 and r.metrics["restore_ok"] == 1
    assert_secret_hidden(BORG_PASSPHRASE, [r], transport)
    [tmp] = restore_dirs(transport)
    assert tmp.name.startswith("upkeeper-restore.") and not tmp.exists(), "temp dir left"


def test_no_matching_archives_is_crit(borg_repo, transport):
    r = check(borg_repo, transport, glob_archives="db02-*")
    assert r.status is Status.CRIT and "no archives matching db02-*" in r.summary


@pytest.mark.slow
def test_stale_archive_made_with_timestamp(borg_repo, transport):
    old = (datetime.now(timezone.utc) - timedelta(hours=60)).strftime("%Y-%m-%dT%H:%M:%S")
    # borg reads --timestamp as local time: pin TZ so the archive is exactly 60h old.
    borg_repo.env["TZ"] = "UTC"
    borg_repo.tool("borg", "create", "--timestamp", old, "::old01-1", str(borg_repo.src))
    r = check(borg_repo, transport, glob_archives="old01-*")
    assert r.status is Status.CRIT, r.summary
    assert "(crit_age is" in r.summary and 59.9 < r.metrics["age_hours"] < 60.5
    warn = check(borg_repo, transport, glob_archives="web01-*",
                 now=datetime.now(timezone.utc) + timedelta(hours=30))
    assert warn.status is Status.WARN and "(warn_age is" in warn.summary


def test_wrong_passphrase_is_crit_and_never_shown(borg_repo, transport):
    wrong = "not-the-Right-pass-3"
    r = check(borg_repo, transport, passphrase=wrong)
    assert r.status is Status.CRIT and "wrong repository passphrase" in r.summary
    assert_secret_hidden(wrong, [r], transport)


def test_missing_repository_is_crit(tmp_path, transport):
    r = check(Repo(tmp_path / "nowhere", tmp_path, "x-pass-1"), transport)
    assert r.status is Status.CRIT and "does not exist" in r.summary


def test_passcommand(borg_repo, transport, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(BORG_PASSPHRASE + "\n")
    params = {"repository": str(borg_repo.path), "passcommand": f"cat {pw}",
              "integrity": False, "restore_sample": 0}
    [r] = run_check(BorgCheck, params, host=transport.host, transport=transport)
    assert r.status is Status.OK, r.summary
    assert all(BORG_PASSPHRASE not in c for c in transport.commands)


def test_locked_repository_warns(borg_repo, transport):
    proc = subprocess.Popen(["borg", "with-lock", str(borg_repo.path), "sleep", "60"],
                            env={**os.environ, **borg_repo.env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (borg_repo.path / "lock.exclusive").exists():
            assert time.monotonic() < deadline, "borg did not take the lock"
            time.sleep(0.1)
        r = check(borg_repo, transport)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert r.status is Status.WARN, r.summary
    assert "repository is locked" in r.summary


@pytest.mark.slow
def test_corrupted_segment_fails_check_and_extract(borg_repo, transport):
    seg = largest_segment(borg_repo.path)
    seg.chmod(0o600)
    with seg.open("r+b") as fh:
        fh.seek(seg.stat().st_size // 2)
        fh.write(b"\0" * 30)
    big = str(borg_repo.src / "etc" / "big.bin")
    r = check(borg_repo, transport, integrity=True, restore_sample=[big])
    assert r.status is Status.CRIT, r.summary
    assert "borg check found errors" in r.summary and "test restore FAILED" in r.summary
    assert r.metrics["integrity_ok"] == 0 and r.metrics["restore_ok"] == 0


@pytest.mark.slow
def test_partial_repository_check_with_max_duration(borg_repo, transport):
    r = check(borg_repo, transport, integrity=True, max_duration="10m")
    assert "borg check partial repository OK" in r.summary
    assert any("--max-duration=600" in c for c in transport.commands)


@pytest.mark.slow
def test_restore_changed_and_identical_files(own_borg_repo, transport):
    repo = own_borg_repo
    hosts = repo.src / "etc" / "hosts"
    hosts.write_text("changed after the backup\n")
    motd = repo.src / "etc" / "motd"
    notes = str(repo.src / "home" / "alice" / "My Docs" / "notes [1].txt")
    r = check(repo, transport, restore_sample=[str(hosts), str(motd), notes])
    assert r.status is Status.OK, r.summary
    assert "2 identical to live, 1 changed since backup" in r.summary
    st = motd.stat()
    motd.write_text("WELCOME\n" * 20)
    os.utime(motd, ns=(st.st_atime_ns, st.st_mtime_ns))
    bad = check(repo, transport, restore_sample=[str(motd)])
    assert bad.status is Status.CRIT and "differs from the unchanged live file" in bad.summary


@pytest.mark.slow
def test_shrunken_archive_warns(own_borg_repo, transport):
    repo = own_borg_repo
    (repo.src / "etc" / "big.bin").unlink()
    repo.tool("borg", "create", "::web01-2", str(repo.src))
    r = check(repo, transport)
    assert r.status is Status.WARN and "shrank against web01-1" in r.summary
    assert r.metrics["snapshot_count"] == 2 and "repository_size" in r.metrics


def test_params_reject_two_secrets_and_verify_with_max_duration():
    with pytest.raises(ValueError):
        BorgCheck.Params.model_validate({"repository": "/r", "passphrase": "a",
                                         "passcommand": "cat /x"})
    with pytest.raises(ValueError):
        BorgCheck.Params.model_validate({"repository": "/r", "verify_data": True,
                                         "max_duration": "1h"})
