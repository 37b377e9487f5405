"""PowerShell helpers: quoting and PowerShell 5.1 / 7 JSON quirks, from sample files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from upkeeper.powershell import (
    SERVICE_START_TYPE,
    SERVICE_STATUS,
    PowerShellError,
    as_list,
    enum_name,
    json_script,
    normalize,
    parse_ps_date,
    parse_ps_json,
    ps_quote,
    run_powershell_json,
)
from upkeeper.testing import FakeTransport, make_host

DATA = Path(__file__).resolve().parents[1] / "data" / "powershell"


def load(name: str) -> object:
    return parse_ps_json((DATA / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("value", "quoted"), [
    ("plain", "'plain'"),
    ("it's", "'it''s'"),
    ("$env:PATH; Remove-Item C:\\ -Recurse", "'$env:PATH; Remove-Item C:\\ -Recurse'"),
    ("curly \u2019 quote", "'curly \u2019\u2019 quote'"),
    ("", "''"),
    (42, "'42'"),
])
def test_ps_quote(value: object, quoted: str) -> None:
    assert ps_quote(value) == quoted


def test_single_object_becomes_a_list() -> None:
    rows = as_list(load("service_single_ps51.json"))
    assert len(rows) == 1 and rows[0]["Name"] == "WinRM"


def test_list_stays_a_list_and_enum_numbers_map_to_names() -> None:
    rows = as_list(load("services_list_ps51.json"))
    assert [(r["Name"], enum_name(r["Status"], SERVICE_STATUS),
             enum_name(r["StartType"], SERVICE_START_TYPE)) for r in rows] == [
        ("Spooler", "Stopped", "Disabled"), ("wuauserv", "Running", "Manual")]


def test_ps7_enum_names_pass_through() -> None:
    row = as_list(load("service_ps7.json"))[0]
    assert enum_name(row["Status"], SERVICE_STATUS) == "Running"
    assert enum_name(row["StartType"], SERVICE_START_TYPE) == "Automatic"
    assert enum_name(99, SERVICE_STATUS) == "99" and enum_name(None, SERVICE_STATUS) is None
    assert enum_name("4", SERVICE_STATUS) == "Running"


def test_value_count_wrapper_is_unwrapped_and_dates_parsed() -> None:
    rows = as_list(load("hotfixes_value_count_ps51.json"))
    assert [r["HotFixID"] for r in rows] == ["KB5034439", "KB5034129"]
    assert rows[0]["InstalledOn"] == datetime(2024, 1, 16, tzinfo=timezone.utc)


def test_date_forms() -> None:
    d = load("dates_ps51.json")
    assert isinstance(d, dict)
    assert d["Epoch"] == datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert d["MinValue"] == datetime(1, 1, 1, tzinfo=timezone.utc)
    assert d["MaxValue"] == datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)
    assert d["WithOffset"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
    assert d["NotADate"] == "/Date(soon)/"
    assert d["Nested"]["LastBootUpTime"] == datetime(2025, 11, 24, 16, 0, tzinfo=timezone.utc)


def test_iso_dates_from_ps7() -> None:
    assert parse_ps_date("2025-11-24T16:00:00+01:00") == datetime(
        2025, 11, 24, 15, 0, tzinfo=timezone.utc)
    assert parse_ps_date("2025-11-24T16:00:00Z") == datetime(2025, 11, 24, 16, 0,
                                                               tzinfo=timezone.utc)
    assert parse_ps_date("2025-11-24T16:00:00").tzinfo is not None  # type: ignore[union-attr]
    assert parse_ps_date("yesterday") is None


def test_bom_warnings_and_trailing_lines_are_skipped() -> None:
    rows = as_list(load("warning_then_json_ps51.txt"))
    assert [r["DeviceID"] for r in rows] == ["C:", "D:"]
    assert rows[1]["Size"] is None


@pytest.mark.parametrize("text", ["", "  \r\n", "\ufeff"])
def test_blank_output_is_none_and_an_empty_list(text: str) -> None:
    assert parse_ps_json(text) is None and as_list(parse_ps_json(text)) == []


def test_garbage_raises() -> None:
    with pytest.raises(json.JSONDecodeError):
        parse_ps_json("Get-CimInstance : Access denied")
    with pytest.raises(json.JSONDecodeError):
        parse_ps_json("{ not json")


def windows_fake(responses: dict[str, object]) -> FakeTransport:
    host = make_host("win01", {"ansible_connection": "winrm"}, {"os_family": "windows"})
    return FakeTransport(host, responses=responses)  # type: ignore[arg-type]


def test_run_powershell_json_through_a_transport() -> None:
    t = windows_fake({"Get-Service WinRM": '{"Name":"WinRM","Status":4}',
                      "Get-Service none": ""})
    assert run_powershell_json(t, "Get-Service WinRM") == [{"Name": "WinRM", "Status": 4}]
    assert run_powershell_json(t, "Get-Service none") == []
    assert t.calls[0].kind == "powershell"
    assert "ConvertTo-Json" in t.calls[0].command


def test_run_powershell_json_failures_raise_powershell_error() -> None:
    t = windows_fake({
        "Get-Service nope": (1, "", "Get-Service : Cannot find any service named 'nope'."),
        "Get-Service odd": "not json at all",
    })
    with pytest.raises(PowerShellError, match="Cannot find any service"):
        run_powershell_json(t, "Get-Service nope")
    with pytest.raises(PowerShellError, match="not JSON"):
        run_powershell_json(t, "Get-Service odd")


def test_json_script_wraps_and_compresses() -> None:
    text = json_script("Get-Service", depth=3)
    assert "& {\nGet-Service\n}" in text and "ConvertTo-Json" in text and "-Depth 3" in text
    assert "-Compress" in text


CORPUS_FILES = [
    "disk_usage/windows__Win32_LogicalDisk_Select_ConvertTo-Json_ps51.json",
    "disk_usage/windows__Get-StorageReliabilityCounter_ConvertTo-Json_partial_ps51.json",
    "windows_updates/get-hotfix__Invoke-Command_Get-HotFix_ConvertTo-Json_ps51_wmi.json",
    "windows_updates/update_session_searcher__baseline_installed_updates_server2016.json",
]


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_real_captures_parse(corpus: Path, name: str) -> None:
    path = corpus / name
    rows = as_list(parse_ps_json(path.read_text(encoding="utf-8-sig")))
    assert rows and all(isinstance(r, dict) for r in rows)
    raw = json.loads(path.read_text(encoding="utf-8-sig"))
    assert rows == as_list(normalize(raw))


def test_real_capture_quirks(corpus: Path) -> None:
    disk = as_list(parse_ps_json((corpus / CORPUS_FILES[0]).read_text(encoding="utf-8-sig")))
    assert len(disk) == 1 and disk[0]["DeviceID"] == "C:" and disk[0]["Size"] == 999271952384
    hotfix = as_list(parse_ps_json((corpus / CORPUS_FILES[2]).read_text(encoding="utf-8-sig")))
    assert hotfix[0]["InstalledOn"] == datetime(2019, 9, 6, 22, 0, tzinfo=timezone.utc)
    assert hotfix[0]["InstallDate"] is None
    updates = as_list(parse_ps_json((corpus / CORPUS_FILES[3]).read_text(encoding="utf-8-sig")))
    assert len(updates) > 1 and updates[0]["KB"] == "KB4521858"
    assert updates[0]["RebootRequired"] is False
