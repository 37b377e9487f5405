"""backup.windows_server_backup with FakeTransport: Get-WBSummary and the wbadmin fallback."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from upkeeper import Status
from upkeeper.testing import FakeTransport, make_host, run_check
from upkeeper_backup.wbadmin import WindowsServerBackupCheck

NOW = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)


def win(responses: dict[str, Any]) -> FakeTransport:
    host = make_host("srv-dc01", vars={"ansible_connection": "winrm"},
                     facts={"os_family": "windows"})
    return FakeTransport(host, responses)


def check(fake: FakeTransport, **params: Any) -> Any:
    [r] = run_check(WindowsServerBackupCheck, params, host=fake.host, transport=fake, now=NOW)
    return r


def test_summary_ok(data: Path):
    fake = win({"Get-WBSummary": (data / "get_wbsummary_ok.json").read_text()})
    r = check(fake)
    assert r.status is Status.OK, r.summary
    assert "last successful backup (2026-11-26 05:00 UTC) is 6 h 59 min old" in r.summary
    assert r.metrics == {"snapshot_count": 14, "age_hours": 6.997}
    assert r.details["next_backup"].startswith("2026-11-27")
    assert all("wbadmin get versions" not in c for c in fake.commands)


def test_summary_failed_backup_is_crit_with_hresult(data: Path):
    fake = win({"Get-WBSummary": (data / "get_wbsummary_failed.json").read_text()})
    r = check(fake, require_schedule=True)
    assert r.status is Status.CRIT
    assert "failed with 0x80070070: There is not enough space on the disk." in r.summary
    assert "(crit_age is" in r.summary and "no backup is scheduled" in r.summary


def test_summary_powershell_51_dates(data: Path):
    fake = win({"Get-WBSummary": (data / "get_wbsummary_ps51_date.json").read_text()})
    r = check(fake)
    assert r.status is Status.WARN and r.metrics["age_hours"] == 30.997


def test_never_backed_up_is_crit():
    fake = win({"Get-WBSummary": '{"LastSuccessfulBackupTime": null, "LastBackupResultHR": 0,'
                                 ' "NumberOfVersions": 0}'})
    r = check(fake)
    assert r.status is Status.CRIT and "no successful" in r.summary


def test_falls_back_to_wbadmin_in_german(data: Path):
    fake = win({"Get-WBSummary": (1, "", "The term 'Get-WBSummary' is not recognized"),
                "wbadmin get versions": (data / "wbadmin_get_versions_de.txt").read_text()})
    r = check(fake)
    assert r.status is Status.OK, r.summary
    assert "latest backup version 11/25/2026-20:00 is 16 h old (2 versions)" in r.summary
    assert r.details["source"] == "wbadmin get versions"
    assert "not recognized" in r.details["summary_error"]
    assert r.details["target"].startswith("Netzwerkfreigabe")


def test_wbadmin_only_and_no_versions(data: Path):
    fake = win({"wbadmin get versions": (data / "wbadmin_get_versions_none.txt").read_text()})
    r = check(fake, source="wbadmin")
    assert r.status is Status.CRIT and "No backup was found" in r.summary
    assert not [c for c in fake.commands if "Get-WBSummary" in c]


def test_wbadmin_missing_is_unknown():
    fake = win({"Get-WBSummary": (1, "", "module not found"),
                "wbadmin get versions": (1, "wbadmin : The term 'wbadmin' is not recognized")})
    assert check(fake).status is Status.UNKNOWN


def test_summary_only_reports_failure_as_unknown():
    fake = win({"Get-WBSummary": (1, "", "Access is denied.")})
    r = check(fake, source="summary")
    assert r.status is Status.UNKNOWN and "Access is denied" in r.summary


def test_skipped_on_linux():
    assert not WindowsServerBackupCheck.supports(make_host("lin"))
