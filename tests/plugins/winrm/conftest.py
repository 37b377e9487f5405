"""Fixtures for the winrm transport tests: the WS-Man endpoint, TLS material, transports."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from upkeeper import Host
from upkeeper_winrm import WinRMTransport
from upkeeper_winrm.testserver import Execution, Reply, WSManServer

DATA = Path(__file__).resolve().parents[2] / "data" / "winrm"
#: What the facts query prints on a domain-joined Server 2022 (PowerShell 5.1 JSON).
FACTS_JSON = (DATA / "facts_server2022_ps51.json").read_text(encoding="utf-8")


class FakeWindows:
    """A handler that answers like a Windows host from rules: (pattern, reply).

    A pattern is a substring or ``re:REGEX`` searched in the user's script (the wrapper
    the transport adds is left out, see :attr:`Execution.script`); a reply
    is a :class:`Reply`, a stdout string, or a callable taking the :class:`Execution`.
    The facts query is answered out of the box. Unmatched commands exit 9009 like cmd.
    """

    def __init__(self) -> None:
        self.rules: list[tuple[str, Any]] = [("Win32_OperatingSystem", FACTS_JSON)]

    def add(self, pattern: str, reply: Any) -> None:
        self.rules.insert(0, (pattern, reply))

    def __call__(self, ex: Execution) -> Reply | str | None:
        text = ex.script
        for pattern, reply in self.rules:
            hit = (re.search(pattern[3:], text) if pattern.startswith("re:")
                   else pattern in text)
            if hit:
                answer: Reply | str | None = reply(ex) if callable(reply) else reply
                return answer
        return None


@pytest.fixture
def windows() -> FakeWindows:
    return FakeWindows()


@pytest.fixture
def endpoint(windows: FakeWindows) -> Iterator[WSManServer]:
    """A plain-HTTP endpoint on 127.0.0.1 with basic auth, answering from ``windows``."""
    with WSManServer(windows) as server:
        yield server


def host_for(server: WSManServer, **overrides: Any) -> Host:
    """A Windows inventory host pointing at ``server`` (basic auth, http unless TLS)."""
    vars_: dict[str, Any] = {**server.host_vars(), **overrides}
    return Host("win01", vars={k: v for k, v in vars_.items() if v is not None})


@pytest.fixture
def make_transport(endpoint: WSManServer) -> Iterator[Callable[..., WinRMTransport]]:
    """Build transports for ``endpoint``; every one is closed at the end of the test."""
    made: list[WinRMTransport] = []

    def make(server: WSManServer | None = None, **overrides: Any) -> WinRMTransport:
        t = WinRMTransport(host_for(server or endpoint, **overrides))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA, a server certificate it signed for 127.0.0.1, and an unrelated CA."""
    out = tmp_path_factory.mktemp("tls")
    ca_key, ca_cert = _ca("upkeeper test CA")
    _, other_cert = _ca("some other CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TLSFiles(out / "ca.pem", out / "server.pem", out / "server.key", out / "other-ca.pem")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


@pytest.fixture
def tls_endpoint(windows: FakeWindows, tls_files: TLSFiles) -> Iterator[WSManServer]:
    """The endpoint over HTTPS with a certificate signed by the test CA."""
    with WSManServer(windows, ssl_context=tls_files.server_context()) as server:
        yield server
