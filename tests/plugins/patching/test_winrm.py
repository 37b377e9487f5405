"""Windows paths through the real WinRM transport and the WS-Management test endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from upkeeper import Host
from upkeeper.models import Status
from upkeeper.testing import run_check
from upkeeper_patching.apply import PatchApply
from upkeeper_patching.checks import PatchStatus
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import Execution, WSManServer

from .helpers import data

NOW = datetime(2024, 10, 20, tzinfo=timezone.utc)


class Windows:
    """Answers the patching scripts with captured JSON, recording every script."""

    def __init__(self, status: str) -> None:
        self.status = status
        self.scripts: list[str] = []

    def __call__(self, ex: Execution) -> Any:
        self.scripts.append(ex.script)
        if "$checkMode = $true" in ex.script:
            return data("windows_apply__installed_one_failed.json")
        if "Microsoft.Update.Session" in ex.script:
            return self.status
        return None


@pytest.fixture
def win() -> Iterator[tuple[Windows, WinRMTransport]]:
    fake = Windows(data("windows_status__ps7_list.json"))
    with WSManServer(fake) as server:
        host = Host("win01", facts={"os_family": "windows"}, vars=server.host_vars())
        transport = WinRMTransport(host)
        try:
            yield fake, transport
        finally:
            transport.close()


def test_status_over_winrm(win):
    fake, transport = win
    [res] = run_check(PatchStatus, {}, host=transport.host, transport=transport, now=NOW)
    assert res.status is Status.WARN, res.summary
    assert res.metrics["pending_security"] == 2 and res.metrics["reboot_required"] == 1
    assert len(fake.scripts) == 1
    assert "CreateUpdateSearcher" in fake.scripts[0]


def test_wsus_unreachable_over_winrm_is_unknown(win):
    fake, transport = win
    fake.status = data("windows_status__wsus_unreachable.json")
    [res] = run_check(PatchStatus, {}, host=transport.host, transport=transport, now=NOW)
    assert res.status is Status.UNKNOWN and "0x8024401C" in res.summary


def test_apply_check_mode_over_winrm_only_searches(win):
    fake, transport = win
    [res] = run_check(PatchApply, {"exclude": ["KB5044020"]}, host=transport.host,
                      transport=transport, check_mode=True, now=NOW)
    assert res.status is Status.OK and not res.changed
    assert not any("Register-ScheduledTask" in s and "$checkMode = $false" in s
                   for s in fake.scripts)
    assert not any("shutdown.exe" in s for s in fake.scripts)
    assert res.details["would_install"][0]["name"] == "KB5044281"
