"""NTLM (the default auth) with message encryption, against pyspnego's real NTLM acceptor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from upkeeper import TransportError
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import WSManServer

from .conftest import FakeWindows

MakeTransport = Callable[..., WinRMTransport]


@pytest.fixture
def ntlm_endpoint(windows: FakeWindows, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[WSManServer]:
    server = WSManServer(windows, auth=("ntlm",))
    users = tmp_path / "ntlm_users"
    users.write_text(f":{server.username}:{server.password}\n")
    monkeypatch.setenv("NTLM_USER_FILE", str(users))
    with server:
        yield server


def ntlm_host(**overrides: object) -> dict[str, object]:
    """Host vars leaving ansible_winrm_transport unset, so the default (ntlm) is used."""
    return {"ansible_winrm_transport": None, **overrides}


def test_ntlm_with_encryption_over_http(ntlm_endpoint: WSManServer, windows: FakeWindows,
                                        make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "Größe today")
    t = make_transport(ntlm_endpoint, **ntlm_host())
    assert t.config.auth == "ntlm" and t.config.message_encryption == "auto"
    assert t.run_powershell("Get-Date").stdout == "Größe today"
    long_script = "# padding\n" * 2000 + "Get-Date"
    assert t.run_powershell(long_script).stdout == "Größe today"
    t.close()
    # Every SOAP message travelled sealed with the NTLM session key.
    assert ntlm_endpoint.plain_requests == 0
    assert ntlm_endpoint.encrypted_requests >= 8
    assert ntlm_endpoint.open_shells == 0


def test_ntlm_without_encryption(ntlm_endpoint: WSManServer, windows: FakeWindows,
                                 make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "today")
    t = make_transport(ntlm_endpoint, **ntlm_host(
        ansible_winrm_message_encryption="never"))
    assert t.run_powershell("Get-Date").stdout == "today"
    assert ntlm_endpoint.encrypted_requests == 0 and ntlm_endpoint.plain_requests > 0


def test_ntlm_wrong_password(ntlm_endpoint: WSManServer, make_transport: MakeTransport) -> None:
    t = make_transport(ntlm_endpoint, **ntlm_host(ansible_password="Guessed-Pass-3"))
    with pytest.raises(TransportError) as err:
        t.run_powershell("Get-Date")
    msg = str(err.value)
    assert "ntlm authentication" in msg and "'upk-admin'" in msg and "401" in msg
    assert "Guessed-Pass-3" not in msg
    assert ntlm_endpoint.shells_created == 0


def test_basic_against_ntlm_only_listener_is_rejected(ntlm_endpoint: WSManServer,
                                                      make_transport: MakeTransport) -> None:
    t = make_transport(ntlm_endpoint)
    with pytest.raises(TransportError, match="basic authentication"):
        t.run("hostname")
