"""Backups as the backup checks see them, through the real runner: ``backup.files`` and
``docs.collect`` in one playbook on this machine; the facts survive the history store."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upkeeper import CheckContext, Result, RunRecord, Status
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport, make_host, run_playbook
from upkeeper_docs.collect import CollectParams, backups_section

from .helpers import section

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux host"),
              pytest.mark.slow]


def test_backup_files_result_of_the_same_run_is_documented(tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    (dumps / "db-1.sql.gz").write_bytes(b"x" * 2048)
    os.utime(dumps / "db-1.sql.gz", (time.time() - 3600, time.time() - 3600))
    history = History(tmp_path / "history.sqlite3")
    run = run_playbook({"name": "as-built", "hosts": "all", "checks": [
        {"check": "backup.files", "params": {"path": f"{dumps}/db-*.sql.gz"}},
        {"check": "docs.collect", "params": {"tls_probe": False,
                                             "backups": [{"tool": "veeam",
                                                          "repository": "nas01:/veeam"}]}},
    ]}, builtins=True, history=history)
    docs = next(r for r in run.results if r.check == "docs.collect")
    assert docs.status in (Status.OK, Status.WARN), docs.summary
    jobs = section(docs.details["facts"], "backups")["items"]
    mtime = datetime.fromtimestamp((dumps / "db-1.sql.gz").stat().st_mtime, timezone.utc)
    assert jobs == [
        {"tool": "files", "repository": str(dumps),
         "last_snapshot": mtime.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"tool": "veeam", "repository": "nas01:/veeam", "last_snapshot": None}]
    # the whole document is stored and read back unchanged (history keeps any size)
    [stored] = history.results(check="docs.collect", limit=1)
    assert stored.details["facts"] == docs.details["facts"]


def test_backup_results_past_the_look_back_are_not_jobs(tmp_path: Path) -> None:
    history = History(":memory:")
    old = datetime.now(timezone.utc) - timedelta(days=20)
    history.start_run(RunRecord("r1", "pb", started=old))
    history.add_result("r1", Result(Status.OK, "ok", host="localhost", check="backup.restic",
                                    started=old, details={
                                        "repository": "sftp:nas:/old",
                                        "latest_time": "2025-01-01T00:00:00+00:00"}))
    history.add_result("r1", Result(Status.OK, "ok", host="localhost", check="backup.restic",
                                    started=datetime.now(timezone.utc), details={
                                        "repository": "s3:s3.example.com/bucket",
                                        "latest_time": "2026-12-05T01:00:00+00:00"}))
    host = make_host("localhost")
    ctx = CheckContext(host=host, transport=FakeTransport(host, {}),
                       params=CollectParams(tls_probe=False),
                       history=history.for_host("localhost", "docs.collect"))
    assert backups_section(ctx).items == [
        {"tool": "restic", "repository": "s3:s3.example.com/bucket",
         "last_snapshot": "2026-12-05T01:00:00Z"}]
