"""disk.cleanup on Windows through the real WinRM transport and the WS-Management test
endpoint: a stand-in host answers disk.usage, lists old temp files, deletes the paths it
is sent, analyses and cleans the component store. This tests the protocol, the plan and
the verify; what PowerShell does on a real Windows filesystem (junctions) is not."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.remediation.realcheck import fix_after_real_check
from upkeeper import Host
from upkeeper.models import Status
from upkeeper.remediation.engine import FixPass
from upkeeper_disk.cleanup import DiskCleanup
from upkeeper_disk.usage import DiskUsage
from upkeeper_disk.wincleanup import parse_analyze
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import Execution, WSManServer

GB = 1024**3
ANALYSIS = """Deployment Image Servicing and Management tool
Actual Size of Component Store : 9.80 GB
    Shared with Windows : 6.10 GB
    Backups and Disabled Features : 1,024.00 MB
    Cache and Temporary Data :  1.00 GB
Component Store Cleanup Recommended : Yes
The operation completed successfully.
"""
TEMP = {r"C:\Windows\Temp\old.tmp": 3 * GB, r"C:\Users\bob\AppData\Local\Temp\x.log": 2 * GB}


class WindowsHost:
    def __init__(self) -> None:
        self.free = 5 * GB
        self.files = dict(TEMP)
        self.scripts: list[str] = []

    def __call__(self, ex: Execution) -> Any:
        s = ex.script
        self.scripts.append(s)
        if "Win32_LogicalDisk" in s:
            return json.dumps([{"DeviceID": "C:", "VolumeName": "", "FileSystem": "NTFS",
                                "Size": 100 * GB, "FreeSpace": self.free}])
        if "SystemDrive = $env:SystemDrive" in s:
            return json.dumps([{"SystemDrive": "C:", "Roots": []}]
                              + [{"Path": p, "Bytes": n} for p, n in self.files.items()])
        if "Remove-Item -LiteralPath $p" in s:
            sent = [x.replace("''", "'") for x in re.findall(r"'((?:[^']|'')*)'",
                                                             s.split("foreach ($p in @(")[1]
                                                             .split("))")[0])]
            gone = [{"Path": p, "Bytes": self.files.pop(p)} for p in sent if p in self.files]
            self.free += sum(g["Bytes"] for g in gone)
            return json.dumps(gone)
        if "/AnalyzeComponentStore" in s:
            return ANALYSIS
        if "/StartComponentCleanup" in s:
            self.free += 2 * GB
            return "The operation completed successfully.\n"
        return None


@pytest.fixture
def win() -> Iterator[tuple[WindowsHost, WinRMTransport]]:
    fake = WindowsHost()
    with WSManServer(fake) as server:
        host = Host("win01", facts={"os_family": "windows"}, vars=server.host_vars())
        transport = WinRMTransport(host)
        try:
            yield fake, transport
        finally:
            transport.close()


def test_parse_analyze():
    assert parse_analyze(ANALYSIS) == (True, 2 * GB)
    assert parse_analyze("Component Store Cleanup Recommended : No")[0] is False


def _pass(tmp_path, transport, check_mode=False) -> FixPass:
    fix_pass, _history, failing = fix_after_real_check(
        tmp_path / "h.sqlite3", {"fix": DiskCleanup.name, "tier": "auto"}, DiskCleanup,
        DiskCleanup.Params.model_validate({"windows_temp": True, "component_store": True}),
        DiskUsage, {"forecast": False, "mounts": {"C:": {"warn_pct": 90, "crit_pct": 93}}},
        transport, check_mode=check_mode, fix_sees_check_params=False)
    assert failing.status is Status.CRIT, failing.summary
    return fix_pass


def test_temp_and_component_store_cleanup_over_winrm(tmp_path, win):
    fake, transport = win
    fix_pass = _pass(tmp_path, transport)
    [outcome] = fix_pass.outcomes
    assert outcome.outcome == "fixed", outcome.summary
    assert fake.files == {} and fake.free == 12 * GB
    assert outcome.plan is not None and outcome.plan["data"]["bytes"] == 7 * GB


def test_check_mode_deletes_nothing_over_winrm(tmp_path, win):
    fake, transport = win
    fix_pass = _pass(tmp_path, transport, check_mode=True)
    assert [o.outcome for o in fix_pass.outcomes] == ["planned"]
    assert fake.files == TEMP and fake.free == 5 * GB
    assert not any("Remove-Item -LiteralPath $p" in s or "/StartComponentCleanup" in s
                   for s in fake.scripts)
