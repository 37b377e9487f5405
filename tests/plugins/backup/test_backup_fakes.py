"""restic/borg behaviour that needs versions or failures we cannot make locally (FakeTransport)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from upkeeper import Status
from upkeeper.testing import FakeTransport, run_check
from upkeeper_backup.borg import BorgCheck
from upkeeper_backup.restic import ResticCheck

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
URL = "rest:https://backup:Top-Secret-77@rest.example:8000/web01"


def snapshot(id_: str, when: str, size: int, files: int) -> dict[str, Any]:
    return {"time": when, "tree": "t", "paths": ["/srv"], "hostname": "web01",
            "username": "root", "program_version": "restic 0.18.1", "id": id_ * 8,
            "short_id": id_ * 8,
            "summary": {"total_bytes_processed": size, "total_files_processed": files}}


def restic(fake: FakeTransport, **params: Any) -> Any:
    base = {"repository": URL, "password": "pw-Restic-0001", "integrity": False,
            "restore_sample": 0}
    [r] = run_check(ResticCheck, {**base, **params}, transport=fake, now=NOW)
    return r


def test_restic_017_summary_sizes_need_no_stats_call():
    snaps = [snapshot("a", "2026-11-25T02:00:00Z", 1_000_000, 500),
             snapshot("b", "2026-11-26T02:00:00.123456789+01:00", 200_000, 480)]
    fake = FakeTransport(responses={"snapshots": json.dumps(snaps)})
    r = restic(fake)
    assert r.status is Status.WARN and "-80%" in r.summary
    assert r.metrics["total_size"] == 200_000 and r.metrics["age_hours"] == 11.0
    assert [c for c in fake.commands if " stats " in c] == []


@pytest.mark.parametrize("code,status,words", [
    (10, Status.CRIT, "no restic repository"),
    (11, Status.WARN, "locked"),
    (12, Status.CRIT, "wrong repository password"),
    (1, Status.UNKNOWN, "connection refused"),
])
def test_restic_017_exit_codes(code, status, words):
    err = f"Fatal: unable to open repository at {URL}: connection refused"
    fake = FakeTransport(responses={"snapshots": (code, "", err)})
    r = restic(fake)
    assert r.status is status and words in r.summary


def test_url_credentials_and_env_secrets_never_shown():
    err = f"Fatal: unable to open repository at {URL}: dial tcp: connection refused"
    fake = FakeTransport(responses={"snapshots": (1, "", err)})
    r = restic(fake, env={"AWS_SECRET_ACCESS_KEY": "aws-Secret-123"})
    assert "Top-Secret-77" not in r.summary and "backup:***@rest.example" in r.summary
    [call] = fake.calls
    assert call.env is not None
    assert call.env["RESTIC_REPOSITORY"] == URL and call.env["RESTIC_PASSWORD"]
    assert call.env["AWS_SECRET_ACCESS_KEY"] == "aws-Secret-123"
    assert "Top-Secret-77" not in call.command and "aws-Secret" not in call.command
    assert "pw-Restic" not in json.dumps(r.to_dict())


def test_restic_garbage_output_is_unknown():
    r = restic(FakeTransport(responses={"snapshots": "<html>proxy error</html>"}))
    assert r.status is Status.UNKNOWN and "unexpected restic snapshots output" in r.summary


def test_restic_stats_failure_does_not_hide_freshness():
    snaps = [dict(snapshot("a", "2026-11-26T02:00:00Z", 0, 0), summary=None)]
    fake = FakeTransport(responses={"snapshots": json.dumps(snaps),
                                    "stats": (1, "", "Fatal: boom")})
    r = restic(fake)
    assert r.status is Status.OK and "total_size" not in r.metrics
    assert r.details["stats_error"] == "Fatal: boom"


def test_restic_restore_helper_failure_is_unknown_not_a_crash():
    snaps = [snapshot("a", "2026-11-26T02:00:00Z", 10, 1)]
    ls = json.dumps({"struct_type": "node", "type": "file", "path": "/srv/a", "size": 5,
                     "mtime": "2026-11-26T01:00:00Z"})
    fake = FakeTransport(responses={"snapshots": json.dumps(snaps), " ls ": ls,
                                    "mktemp": (1, "", "mktemp: read-only file system")})
    r = restic(fake, restore_sample=1)
    assert r.status is Status.UNKNOWN and "test restore could not run" in r.summary
    assert "latest snapshot" in r.summary


def test_borg_passphrase_and_timezone_in_env_only():
    listing = {"archives": [{"name": "web01-1", "archive": "web01-1", "id": "ab",
                             "start": "2026-11-26T02:00:00.000000",
                             "time": "2026-11-26T02:00:00.000000"}]}
    fake = FakeTransport(responses={"borg list": json.dumps(listing),
                                    "borg info": (2, "", "odd failure")})
    [r] = run_check(BorgCheck, {"repository": "ssh://borg@nas/./web01",
                                "passphrase": "pw-Borg-0002", "integrity": False,
                                "restore_sample": 0}, transport=fake, now=NOW)
    assert r.status is Status.OK and r.metrics["age_hours"] == 10.0
    call = fake.calls[0]
    assert call.env is not None and call.env["TZ"] == "UTC"
    assert call.env["BORG_PASSPHRASE"] == "pw-Borg-0002"
    assert all("pw-Borg" not in c for c in fake.commands)
    assert "--lock-wait 30" in call.command
