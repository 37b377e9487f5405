"""backup.restic against real repositories made in a temp dir, through the local transport."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Status
from upkeeper.store.history import History
from upkeeper.testing import run_check
from upkeeper_backup.restic import ResticCheck

from .conftest import (
    RESTIC_PASSWORD,
    RecordingTransport,
    Repo,
    assert_secret_hidden,
    needs_restic,
    restore_dirs,
)

pytestmark = [needs_restic]


def check(repo: Repo, transport: RecordingTransport, **params: Any) -> Any:
    kw = {k: params.pop(k) for k in ("history", "now") if k in params}
    base: dict[str, Any] = {"repository": str(repo.path), "password": repo.secret,
                            "restore_sample": 0, "integrity": False}
    [result] = run_check(ResticCheck, {**base, **params}, host=transport.host,
                         transport=transport, **kw)
    return result


def largest_pack(repo: Path) -> Path:
    return max((p for p in (repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


def damage(path: Path, offset: int = 4000) -> None:
    path.chmod(0o600)
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\0" * 40)


@pytest.mark.slow
def test_fresh_repository_everything_ok(restic_repo, transport):
    r = check(restic_repo, transport, integrity=True, restore_sample=3, host="web01",
              tags=["daily"], paths=[str(restic_repo.src)])
    assert r.status is Status.OK, r.summary
    assert "latest snapshot" in r.summary and "restic check OK" in r.summary
    assert "test restore of 3 files OK" in r.summary
    assert r.metrics["snapshot_count"] == 1
    assert 0 <= r.metrics["age_hours"] < 1
    assert r.metrics["total_size"] > 300_000
    assert r.metrics["restore_ok"] == 1 and r.metrics["integrity_ok"] == 1
    assert all(f["result"] == "identical" for f in r.details["restore"])
    assert_secret_hidden(RESTIC_PASSWORD, [r], transport)
    [tmp] = restore_dirs(transport)
    assert tmp.name.startswith("upkeeper-restore.") and not tmp.exists(), "temp dir left"


def test_filters_that_match_nothing_are_crit(restic_repo, transport):
    r = check(restic_repo, transport, host="db99", tags=["daily"])
    assert r.status is Status.CRIT
    assert "no snapshots matching host=db99 tag=daily" in r.summary


def test_stale_snapshot_made_with_time_warns(restic_repo, transport):
    when = (datetime.now().astimezone() - timedelta(hours=30)).strftime("%Y-%m-%d %H:%M:%S")
    restic_repo.tool("restic", "backup", "--host", "old01", "--time", when,
                     str(restic_repo.src))
    r = check(restic_repo, transport, host="old01")
    assert r.status is Status.WARN
    assert "(warn_age is 26 h)" in r.summary
    assert 29.9 < r.metrics["age_hours"] < 30.5


def test_stale_past_crit_age_is_crit(restic_repo, transport):
    later = datetime.now(timezone.utc) + timedelta(days=3)
    r = check(restic_repo, transport, now=later, warn_age="1d", crit_age="2d")
    assert r.status is Status.CRIT and "(crit_age is 2 d)" in r.summary


def test_wrong_password_is_crit_and_never_shown(restic_repo, transport):
    wrong = "not-the-Right-pw-9"
    r = check(restic_repo, transport, password=wrong)
    assert r.status is Status.CRIT
    assert "wrong repository password" in r.summary
    assert_secret_hidden(wrong, [r], transport)


def test_missing_repository_is_crit(tmp_path, transport):
    r = check(Repo(tmp_path / "nowhere", tmp_path, "x-pass-1"), transport)
    assert r.status is Status.CRIT
    assert "no restic repository" in r.summary and str(tmp_path / "nowhere") in r.summary


def test_restic_not_installed_is_unknown(restic_repo, transport):
    r = check(restic_repo, transport, restic_bin="/nonexistent/restic")
    assert r.status is Status.UNKNOWN and "not installed" in r.summary


def test_password_file_on_the_host(restic_repo, transport, tmp_path):
    pwfile = tmp_path / "pw"
    pwfile.write_text(RESTIC_PASSWORD + "\n")
    base = {"repository": str(restic_repo.path), "password_file": str(pwfile),
            "integrity": False, "restore_sample": 0}
    [r] = run_check(ResticCheck, base, host=transport.host, transport=transport)
    assert r.status is Status.OK, r.summary
    assert all(RESTIC_PASSWORD not in c for c in transport.commands)


def test_exactly_one_password_source_is_required():
    with pytest.raises(ValueError, match="exactly one"):
        ResticCheck.Params.model_validate({"repository": "/r"})
    with pytest.raises(ValueError, match="exactly one"):
        ResticCheck.Params.model_validate({"repository": "/r", "password": "a",
                                           "password_file": "/f"})


@pytest.mark.slow
def test_locked_repository_skips_integrity_and_restore_with_warn(restic_repo, transport):
    # `restic key passwd` holds an exclusive lock while it waits for the new password.
    proc = subprocess.Popen(["restic", "key", "passwd"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **restic_repo.env})
    try:
        deadline = time.monotonic() + 20
        while not any((restic_repo.path / "locks").iterdir()):
            assert time.monotonic() < deadline, "restic did not take a lock"
            time.sleep(0.1)
        r = check(restic_repo, transport, integrity=True, restore_sample=2)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=20)
    assert r.status is Status.WARN, r.summary
    assert "integrity check skipped: repository is locked for " in r.summary
    assert f"by host {os.uname().nodename} pid {proc.pid} (user " in r.summary
    assert "exclusive" in r.summary and "restic unlock" not in r.summary  # a live lock
    assert "test restore skipped" in r.summary
    assert r.metrics["snapshot_count"] == 1  # freshness still judged (snapshots --no-lock)


@pytest.mark.slow
def test_corrupted_data_pack_fails_check_and_restore(restic_repo, transport):
    damage(largest_pack(restic_repo.path))
    big = str(restic_repo.src / "etc" / "big.bin")
    r = check(restic_repo, transport, integrity=True, read_data_subset=1, restore_sample=[big])
    assert r.status is Status.CRIT
    assert "restic check found errors" in r.summary
    assert "test restore FAILED" in r.summary
    assert r.metrics["integrity_ok"] == 0 and r.metrics["restore_ok"] == 0
    assert r.summary.index("restic check found errors") < r.summary.index("latest snapshot")


def test_deleted_pack_fails_plain_check(restic_repo, transport):
    largest_pack(restic_repo.path).unlink()
    r = check(restic_repo, transport, integrity=True)
    assert r.status is Status.CRIT
    assert "does not exist" in r.summary


def test_restore_skips_live_files_changed_since_backup(own_restic_repo, transport):
    hosts = own_restic_repo.src / "etc" / "hosts"
    hosts.write_text(hosts.read_text() + "10.0.0.1 new\n")
    notes = str(own_restic_repo.src / "home" / "alice" / "My Docs" / "notes [1].txt")
    r = check(own_restic_repo, transport, restore_sample=[str(hosts), notes])
    assert r.status is Status.OK, r.summary
    assert "1 identical to live, 1 changed since backup" in r.summary
    results = {f["path"]: f["result"] for f in r.details["restore"]}
    assert results[notes] == "identical"
    assert results[str(hosts)].startswith("live file changed")


def test_restore_detects_content_that_differs_from_unchanged_live_file(own_restic_repo, transport):
    motd = own_restic_repo.src / "etc" / "motd"
    st = motd.stat()
    motd.write_text("WELCOME\n" * 20)  # same size, and the mtime is put back below
    os.utime(motd, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = check(own_restic_repo, transport, restore_sample=[str(motd)])
    assert r.status is Status.CRIT
    assert "restored content differs from the unchanged live file" in r.summary
    assert r.metrics["restore_ok"] == 0


def test_restore_of_a_path_not_in_the_snapshot_is_crit(restic_repo, transport):
    r = check(restic_repo, transport, restore_sample=["/no/such/file"])
    assert r.status is Status.CRIT and "not in the backup" in r.summary


@pytest.mark.slow
def test_shrunken_snapshot_warns(own_restic_repo, transport):
    (own_restic_repo.src / "etc" / "big.bin").unlink()
    own_restic_repo.tool("restic", "backup", "--host", "web01", "--tag", "daily",
                     str(own_restic_repo.src))
    hist = History(":memory:")
    r = check(own_restic_repo, transport, history=hist)
    assert r.status is Status.WARN
    assert "shrank" in r.summary and "deleted or excluded" in r.summary
    assert r.metrics["snapshot_count"] == 2
    # Sizes are cached per snapshot: the next run needs no `restic stats`.
    transport.commands.clear()
    again = check(own_restic_repo, transport, history=hist)
    assert again.status is Status.WARN
    assert not [c for c in transport.commands if " stats " in c]


@pytest.mark.slow
def test_read_data_subset_rotates_across_runs(restic_repo, transport):
    hist = History(":memory:")
    seen = [check(restic_repo, transport, integrity=True, read_data_subset=3,
                  history=hist).details["read_data_subset"] for _ in range(4)]
    assert seen == ["1/3", "2/3", "3/3", "1/3"]


@pytest.mark.slow
def test_integrity_every_skips_recent_successful_checks(restic_repo, transport):
    hist = History(":memory:")
    first = check(restic_repo, transport, integrity=True, integrity_every="1d", history=hist)
    assert "restic check OK" in first.summary
    transport.commands.clear()
    second = check(restic_repo, transport, integrity=True, integrity_every="1d", history=hist)
    assert second.status is Status.OK
    assert not [c for c in transport.commands if c.split()[1:2] == ["check"]]
    later = datetime.now(timezone.utc) + timedelta(days=1, hours=1)
    third = check(restic_repo, transport, integrity=True, integrity_every="1d", history=hist,
                  now=later, warn_age="5d", crit_age="6d")
    assert "restic check OK" in third.summary


def test_each_run_checks_again(restic_repo, transport):
    """The once-per-run integrity outcome never outlives its run."""
    assert "restic check OK" in check(restic_repo, transport, integrity=True).summary
    largest_pack(restic_repo.path).unlink()
    again = check(restic_repo, transport, integrity=True)
    assert again.status is Status.CRIT and "restic check found errors" in again.summary
    assert "shared" not in again.summary
