"""WinRM over HTTPS with a CA made in the test: validation on by default, clear failures."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from upkeeper import TransportError
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import WSManServer

from .conftest import FakeWindows, TLSFiles

MakeTransport = Callable[..., WinRMTransport]


def test_trusted_ca_validates(tls_endpoint: WSManServer, tls_files: TLSFiles,
                              windows: FakeWindows, make_transport: MakeTransport) -> None:
    windows.add("Get-Date", "today")
    t = make_transport(tls_endpoint, ansible_winrm_ca_trust_path=str(tls_files.ca))
    assert t.config.endpoint.startswith("https://127.0.0.1:")
    assert t.run_powershell("Get-Date").stdout == "today"
    t.close()
    assert tls_endpoint.open_shells == 0


def test_default_port_and_scheme_are_https(tls_endpoint: WSManServer,
                                           make_transport: MakeTransport) -> None:
    t = make_transport(tls_endpoint, ansible_port=None, ansible_winrm_scheme=None)
    assert t.config.endpoint == "https://127.0.0.1:5986/wsman"


@pytest.mark.parametrize("trust", [None, "other"])
def test_untrusted_certificate_fails_with_how_to_trust(tls_endpoint: WSManServer,
                                                       tls_files: TLSFiles,
                                                       make_transport: MakeTransport,
                                                       trust: str | None) -> None:
    ca = str(tls_files.other_ca) if trust else None
    t = make_transport(tls_endpoint, ansible_winrm_ca_trust_path=ca)
    with pytest.raises(TransportError) as err:
        t.run_powershell("Get-Date")
    msg = str(err.value)
    assert f"127.0.0.1:{tls_endpoint.port}" in msg and "win01" in msg
    assert "certificate" in msg and "could not be verified: unable to get local issuer" in msg
    assert "ansible_winrm_ca_trust_path" in msg
    assert "ansible_winrm_server_cert_validation: ignore" in msg
    assert tls_endpoint.shells_created == 0


def test_ignore_validation_works_and_warns_every_run(tls_endpoint: WSManServer,
                                                     windows: FakeWindows,
                                                     make_transport: MakeTransport,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    windows.add("Get-Date", "today")
    caplog.set_level(logging.WARNING, logger="upkeeper.winrm")
    for _ in range(2):
        t = make_transport(tls_endpoint, ansible_winrm_server_cert_validation="ignore")
        assert t.run_powershell("Get-Date").stdout == "today"
        t.close()
    warnings = [r.getMessage() for r in caplog.records
                if "certificate validation is disabled" in r.getMessage()]
    assert len(warnings) == 2 and all(w.startswith("win01:") for w in warnings)
    assert tls_endpoint.open_shells == 0


def test_http_client_against_https_listener_is_a_clear_error(
        tls_endpoint: WSManServer, make_transport: MakeTransport) -> None:
    t = make_transport(tls_endpoint, ansible_winrm_scheme="http")
    with pytest.raises(TransportError, match=r"127\.0\.0\.1:\d+ \(win01\)"):
        t.run("hostname")
