"""backup.files with real files whose mtime is set (local transport), and Windows via fakes."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from upkeeper import Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_backup.files import FilesCheck, parse_find_output, split_glob

HOUR = 3600


def dump(directory: Path, name: str, size: int, hours_ago: float) -> Path:
    path = directory / name
    path.write_bytes(b"x" * size)
    when = time.time() - hours_ago * HOUR
    os.utime(path, (when, when))
    return path


def check(transport: Any, **params: Any) -> Any:
    kw = {k: params.pop(k) for k in ("history", "now") if k in params}
    [r] = run_check(FilesCheck, params, host=transport.host, transport=transport, **kw)
    return r


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    d = tmp_path / "backups dir"
    d.mkdir()
    dump(d, "db-1.sql.gz", 10_000, 50)
    dump(d, "db-2.sql.gz", 10_500, 26.5)
    dump(d, "db-3.sql.gz", 11_000, 2)
    dump(d, "other.txt", 5, 0.1)
    return d


def test_newest_dump_fresh(dumps, transport):
    r = check(transport, path=f"{dumps}/db-*.sql.gz", min_count=3)
    assert r.status is Status.OK, r.summary
    assert "db-3.sql.gz is 2 h old" in r.summary and "10.7 KiB" in r.summary
    assert r.metrics["file_count"] == 3 and r.metrics["total_size"] == 11_000
    assert 1.9 < r.metrics["age_hours"] < 2.1


def test_stale_dump_warns_then_crits(dumps, transport):
    (dumps / "db-3.sql.gz").unlink()
    warn = check(transport, path=f"{dumps}/db-*.sql.gz")
    assert warn.status is Status.WARN and "(warn_age is" in warn.summary
    crit = check(transport, path=f"{dumps}/db-*.sql.gz", warn_age="12h", crit_age="1d")
    assert crit.status is Status.CRIT and "(crit_age is" in crit.summary


def test_empty_dump_is_crit(dumps, transport):
    dump(dumps, "db-4.sql.gz", 20, 0.5)
    r = check(transport, path=f"{dumps}/db-*.sql.gz", min_size="1KiB", warn_shrink_pct=None)
    assert r.status is Status.CRIT and "only 20 bytes" in r.summary


def test_shrink_and_min_count(dumps, transport):
    dump(dumps, "db-4.sql.gz", 3_000, 0.5)
    r = check(transport, path=f"{dumps}/db-*.sql.gz", min_count=7)
    assert r.status is Status.WARN
    assert "shrank against db-3.sql.gz" in r.summary and "only 4 copies kept" in r.summary


def test_no_match_and_missing_directory(tmp_path, transport):
    none = check(transport, path=f"{tmp_path}/*.bak")
    assert none.status is Status.CRIT and "no backup files match" in none.summary
    gone = check(transport, path=f"{tmp_path}/nope/*.bak")
    assert gone.status is Status.CRIT and "No such file" in gone.summary


def test_recursive(tmp_path, transport):
    sub = tmp_path / "2026" / "11"
    sub.mkdir(parents=True)
    dump(sub, "img.vhdx", 500, 1)
    assert check(transport, path=f"{tmp_path}/*.vhdx").status is Status.CRIT
    assert check(transport, path=f"{tmp_path}/*.vhdx", recursive=True).status is Status.OK


def test_single_overwritten_file_compared_with_previous_run(tmp_path, transport):
    hist = History(":memory:")
    dump(tmp_path, "nightly.tar", 100_000, 20)
    assert check(transport, path=f"{tmp_path}/nightly.tar", history=hist).status is Status.OK
    dump(tmp_path, "nightly.tar", 1_000, 1)
    r = check(transport, path=f"{tmp_path}/nightly.tar", history=hist)
    assert r.status is Status.WARN and "previous run" in r.summary


def test_glob_only_in_file_name():
    with pytest.raises(ValueError):
        FilesCheck.Params.model_validate({"path": "/var/*/db.sql"})
    assert split_glob("D:\\Backups\\*.vhdx") == ("D:\\Backups", "*.vhdx")
    assert split_glob("/var/backups/*.gz") == ("/var/backups", "*.gz")


def test_parse_find_output_with_odd_names():
    text = "1700000000.5\t12\t/b/a\tb\nc.gz\0" + "1690000000.0\t3\t/b/old.gz\0"
    files = parse_find_output(text)
    assert [f.path for f in files] == ["/b/old.gz", "/b/a\tb\nc.gz"]
    assert files[-1].mtime == datetime.fromtimestamp(1700000000.5, tz=timezone.utc)


def test_windows_through_powershell():
    now = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    rows = [{"FullName": "D:\\Backups\\sql-1.bak", "Length": 5000,
             "LastWriteTimeUtc": "2026-11-25T01:00:00.0000000Z"},
            {"FullName": "D:\\Backups\\sql-2.bak", "Length": 5100,
             "LastWriteTimeUtc": "/Date(1795654800000)/"}]
    host = make_host("win01", vars={"ansible_connection": "winrm"},
                     facts={"os_family": "windows"})
    fake = FakeTransport(host, {"Get-ChildItem": json.dumps(rows)})
    r = check(fake, path="D:\\Backups\\sql-*.bak", now=now)
    assert r.status is Status.OK, r.summary
    assert "sql-2.bak" in r.summary and r.metrics["file_count"] == 2
    script = fake.calls[0].command
    assert "-LiteralPath 'D:\\Backups'" in script and "-Filter 'sql-*.bak'" in script


def test_windows_quoting_of_hostile_path():
    host = make_host("win01", facts={"os_family": "windows"})
    fake = FakeTransport(host, {"Get-ChildItem": "[]"})
    r = check(fake, path="D:\\it's\\*.bak")
    assert r.status is Status.CRIT
    assert "-LiteralPath 'D:\\it''s'" in fake.calls[0].command


def test_unknown_when_powershell_fails():
    host = make_host("win01", facts={"os_family": "windows"})
    fake = FakeTransport(host, {"Get-ChildItem": (1, "", "Access is denied")})
    r = check(fake, path="D:\\B\\*.bak")
    assert r.status is Status.UNKNOWN and "Access is denied" in r.summary


def test_now_injection_is_honoured(dumps, transport):
    later = datetime.now(timezone.utc) + timedelta(days=5)
    assert check(transport, path=f"{dumps}/db-*", now=later).status is Status.CRIT


def test_option_looking_path_deletes_nothing(tmp_path, monkeypatch, transport):
    """``path: "-delete/*.gz"`` once passed validation and ran ``find -delete ...``, which
    deleted every file in the working directory (``serve`` runs in ``/``)."""
    cwd = tmp_path / "cwd"
    (cwd / "sub").mkdir(parents=True)
    for name in ("a.gz", "b.txt", "sub/c.gz"):
        (cwd / name).write_text("keep me\n")
    monkeypatch.chdir(cwd)
    for recursive in (False, True):
        with pytest.raises(ValidationError, match="path must be absolute") as err:
            check(transport, path="-delete/*.gz", recursive=recursive)
        assert err.value.errors()[0]["loc"] == ("path",)
    assert sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*")) == [
        "a.gz", "b.txt", "sub", "sub/c.gz"]
    assert transport.commands == []


@pytest.mark.parametrize("path", ["backups/*.gz", "*.gz", "(/*.gz", "!/x/*.gz",
                                  "/var/backups\n-delete/*.gz"])
def test_paths_find_could_misread_are_refused(path):
    with pytest.raises(ValidationError, match="path"):
        FilesCheck.Params.model_validate({"path": path})


def test_relative_dot_path_and_windows_path_on_linux(tmp_path, monkeypatch, transport):
    dump(tmp_path, "db.sql.gz", 100, 1)
    monkeypatch.chdir(tmp_path)
    assert check(transport, path="./*.gz").status is Status.OK
    r = check(transport, path="D:\\Backups\\*.bak")
    assert r.status is Status.UNKNOWN and "on a Linux host" in r.summary
    assert not [c for c in transport.commands if c.startswith("find") and "D:" in c]
