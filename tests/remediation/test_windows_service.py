"""system.service on Windows through the real WinRM transport and the WS-Management test
endpoint (a stand-in service manager answers Get-Service and Start-Service)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.remediation.realcheck import fix_after_real_check
from upkeeper import Host
from upkeeper.models import Status
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.engine import FixPass
from upkeeper.store.history import History
from upkeeper_system.service import ServiceCheck, ServiceParams, ServiceRestart
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import Execution, WSManServer


class ServiceManager:
    def __init__(self) -> None:
        self.state = "Stopped"
        self.scripts: list[str] = []

    def __call__(self, ex: Execution) -> Any:
        script = ex.script
        self.scripts.append(script)
        if "Start-Service -Name 'Spooler'" in script:
            self.state = "Running"
            return ""
        if "Get-Service -Name 'Spooler'" in script:
            return json.dumps({"Status": self.state, "StartType": "Automatic"})
        return None


@pytest.fixture
def win() -> Iterator[tuple[ServiceManager, WinRMTransport]]:
    fake = ServiceManager()
    with WSManServer(fake) as server:
        host = Host("win01", facts={"os_family": "windows"}, vars=server.host_vars())
        transport = WinRMTransport(host)
        try:
            yield fake, transport
        finally:
            transport.close()


def _pass(tmp_path, transport, *, check_mode: bool = False) -> tuple[FixPass, History]:
    fix_pass, history, failing = fix_after_real_check(
        tmp_path / "h.sqlite3", {"fix": ServiceRestart.name, "safe_anytime": True},
        ServiceRestart, ServiceRestart.Params.model_validate({}), ServiceCheck,
        ServiceParams(service="Spooler"), transport, check_mode=check_mode,
        result_name="spooler")
    assert failing.status is Status.CRIT and failing.summary == "Spooler is stopped"
    return fix_pass, history


def test_stopped_windows_service_is_started_and_verified(tmp_path, win):
    fake, transport = win
    fix_pass, history = _pass(tmp_path, transport)
    assert [o.outcome for o in fix_pass.outcomes] == ["fixed"]
    assert fake.state == "Running"
    apply = AuditLog(history).records(kinds=["apply"])[0].data
    assert any("Start-Service" in c["command"] for c in apply["commands"])


def test_check_mode_starts_nothing(tmp_path, win):
    fake, transport = win
    fix_pass, _ = _pass(tmp_path, transport, check_mode=True)
    assert [o.outcome for o in fix_pass.outcomes] == ["planned"]
    assert fake.state == "Stopped"
    assert not any("Start-Service" in s for s in fake.scripts)
