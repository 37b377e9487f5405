"""system.service on Windows through the real WinRM transport and the WS-Management test
endpoint (a stand-in service manager answers Get-Service and Start-Service)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from upkeeper import Host
from upkeeper.engine.hostrun import FinishedHost
from upkeeper.engine.secrets import Redactor
from upkeeper.models import Result, Status
from upkeeper.remediation.audit import AuditLog
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.spec import Binding, FixSpec
from upkeeper.store.history import History
from upkeeper.testing import run_check
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
    history = History(tmp_path / "h.sqlite3")
    spec = FixSpec.model_validate({"fix": ServiceRestart.name, "safe_anytime": True})
    fix_pass = FixPass(history, [Binding(0, spec, ServiceRestart,
                                         ServiceRestart.Params.model_validate({}))],
                       actor="test")
    params = ServiceParams(service="Spooler")

    def rerun(index: int) -> list[Result]:
        out = run_check(ServiceCheck, params, host=transport.host, transport=transport)
        for r in out:
            r.host, r.check, r.name = transport.host.name, ServiceCheck.name, "spooler"
        return out

    [failing] = rerun(0)
    assert failing.status is Status.CRIT and failing.summary == "Spooler is stopped"
    fix_pass(FinishedHost(transport.host, [(0, None, [failing])],  # type: ignore[list-item]
                          lambda: transport, rerun, check_mode, "run-1", Redactor(),
                          threading.Event(), None, lambda i: params))
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
