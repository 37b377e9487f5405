"""Windows backup checks over the real WinRM transport against the WS-Man test endpoint."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from upkeeper import Status
from upkeeper.testing import run_check
from upkeeper_backup.files import FilesCheck
from upkeeper_backup.wbadmin import WindowsServerBackupCheck

try:
    from upkeeper_winrm import WinRMTransport
    from upkeeper_winrm.testserver import Reply, WSManServer

    from ..winrm.conftest import FakeWindows, host_for
except ImportError as exc:  # the winrm plugin or its test endpoint is not there
    pytest.skip(f"WinRM test endpoint unavailable: {exc}", allow_module_level=True)

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def test_wbadmin_fallback_over_winrm(data: Path) -> None:
    windows = FakeWindows()
    windows.add("Get-WBSummary", Reply(stderr="Get-WBSummary : The term 'Get-WBSummary' is "
                                              "not recognized", exit_code=1))
    windows.add("wbadmin get versions",
                (data / "wbadmin_get_versions_fr.txt").read_text(encoding="utf-8"))
    with WSManServer(windows) as server:
        host = host_for(server)
        host.facts = {"os_family": "windows"}
        transport = WinRMTransport(host)
        try:
            [r] = run_check(WindowsServerBackupCheck, {}, host=host, transport=transport,
                            now=NOW)
        finally:
            transport.close()
    assert r.status is Status.OK, r.summary
    assert "11/25/2026-20:00 is 16 h old (1 version)" in r.summary
    assert r.details["target"] == "Disque fixe nommé E:"


def test_summary_and_backup_files_over_winrm(data: Path) -> None:
    windows = FakeWindows()
    windows.add("Get-WBSummary", (data / "get_wbsummary_failed.json").read_text())
    rows = [{"FullName": "D:\\Backups\\sql-2.bak", "Length": 5100,
             "LastWriteTimeUtc": "2026-11-26T10:00:00.0000000Z"}]
    windows.add("Get-ChildItem", json.dumps(rows))
    with WSManServer(windows) as server:
        host = host_for(server)
        host.facts = {"os_family": "windows"}
        transport = WinRMTransport(host)
        try:
            [wsb] = run_check(WindowsServerBackupCheck, {}, host=host, transport=transport,
                              now=NOW)
            [files] = run_check(FilesCheck, {"path": "D:\\Backups\\sql-*.bak"}, host=host,
                                transport=transport, now=NOW)
        finally:
            transport.close()
    assert wsb.status is Status.CRIT and "0x80070070" in wsb.summary
    assert files.status is Status.OK and files.metrics["age_hours"] == 2.0
