"""Host certificates (``@cert-authority``) against real sshd servers presenting them."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ssh.conftest import login_user
from upkeeper import Host, Status, TransportError
from upkeeper_ssh import SSHTransport, certs
from upkeeper_ssh.testserver import SSHServer, keygen

pytestmark = pytest.mark.sshd


def sign_host_key(ca: Path, host_key: Path, principals: str, validity: str | None = None,
                  user_cert: bool = False) -> Path:
    """``ssh-keygen -s``: a certificate for ``host_key`` (written as ``*-cert.pub``)."""
    args = ["ssh-keygen", "-q", "-s", str(ca), "-I", "upkeeper-test", "-n", principals]
    if not user_cert:
        args.append("-h")
    if validity:
        args += ["-V", validity]
    args.append(str(host_key.with_suffix(".pub")))
    subprocess.run(args, check=True, capture_output=True)
    return host_key.with_name(host_key.name + "-cert.pub")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return keygen(tmp_path_factory.mktemp("ca") / "host_ca", "ed25519")


def cert_server(directory: Path, ca: Path, principals: str = "127.0.0.1",
                validity: str | None = None, user_cert: bool = False,
                host_key_type: str = "ed25519") -> SSHServer:
    srv = SSHServer(directory, host_key_types=(host_key_type,))
    cert = sign_host_key(ca, srv.host_keys[0], principals, validity, user_cert)
    srv.extra_config = f"HostCertificate {cert}\n"
    srv.authorize(login_user())
    return srv.start()


@pytest.fixture
def servers() -> Iterator[list[SSHServer]]:
    started: list[SSHServer] = []
    yield started
    for srv in started:
        srv.stop()


def connect(srv: SSHServer, kh_text: str, tmp_path: Path, seen: list[str] | None = None) -> str:
    kh = tmp_path / "known_hosts"
    kh.write_text(kh_text)
    vars: dict[str, Any] = {"ansible_host": "127.0.0.1", "ansible_port": srv.port,
                            "ansible_user": "root",
                            "ansible_ssh_private_key_file": str(srv.client_key),
                            "ssh_known_hosts_file": str(kh)}
    t = SSHTransport(Host("h1", vars=vars))
    try:
        out = t.run("echo ok").stdout
        if seen is not None:
            seen.append(str(t._hops[-1].host_key_type))
        return out
    finally:
        t.close()


def ca_line(ca: Path, pattern: str = "*") -> str:
    kind, blob = ca.with_suffix(".pub").read_text().split()[:2]
    return f"@cert-authority {pattern} {kind} {blob}\n"


def test_certificate_signed_by_known_ca_is_accepted(ca: Path, tmp_path: Path,
                                                    servers: list[SSHServer]) -> None:
    srv = cert_server(tmp_path / "s", ca, principals="127.0.0.1,db.example.com")
    servers.append(srv)
    # No plain key of this server anywhere: only the CA vouches for it.
    seen: list[str] = []
    kh = "# ca\n" + ca_line(ca, f"[127.0.0.1]:{srv.port}")
    assert connect(srv, kh, tmp_path, seen) == "ok\n"
    assert seen == ["ssh-ed25519-cert-v01@openssh.com"]


def test_rsa_ca_and_ecdsa_host_key(tmp_path: Path, servers: list[SSHServer]) -> None:
    rsa_ca = keygen(tmp_path / "rsa_ca", "rsa")
    srv = cert_server(tmp_path / "s", rsa_ca, host_key_type="ecdsa")
    servers.append(srv)
    seen: list[str] = []
    assert connect(srv, ca_line(rsa_ca), tmp_path, seen) == "ok\n"
    assert seen == ["ecdsa-sha2-nistp256-cert-v01@openssh.com"]


@pytest.mark.parametrize(("kwargs", "status", "reason"), [
    ({"principals": "db.example.com"}, Status.CRIT, "is not for 127.0.0.1"),
    ({"validity": "20200101:20200102"}, Status.UNKNOWN, "certificate expired 2020-01-02"),
    ({"validity": "+3650d:+3660d"}, Status.UNKNOWN, "not valid yet"),
    ({"user_cert": True}, Status.CRIT, "not a host certificate"),
])
def test_invalid_certificates_are_refused(ca: Path, tmp_path: Path, servers: list[SSHServer],
                                          kwargs: dict[str, Any], status: Status,
                                          reason: str) -> None:
    srv = cert_server(tmp_path / "s", ca, **kwargs)
    servers.append(srv)
    with pytest.raises(TransportError) as info:
        connect(srv, ca_line(ca), tmp_path)
    assert info.value.status is status
    text = str(info.value)
    assert "HOST CERTIFICATE FOR h1 IS NOT VALID" in text and reason in text
    assert f"{tmp_path / 'known_hosts'}:1" in text


def test_revoked_ca_is_refused(ca: Path, tmp_path: Path, servers: list[SSHServer]) -> None:
    srv = cert_server(tmp_path / "s", ca)
    servers.append(srv)
    kind, blob = ca.with_suffix(".pub").read_text().split()[:2]
    with pytest.raises(TransportError) as info:
        connect(srv, ca_line(ca) + f"@revoked * {kind} {blob}\n", tmp_path)
    assert info.value.status is Status.CRIT
    assert "SIGNED BY A REVOKED CA" in str(info.value)


def test_other_ca_falls_back_to_the_plain_key(ca: Path, tmp_path: Path,
                                              servers: list[SSHServer]) -> None:
    srv = cert_server(tmp_path / "s", ca)
    servers.append(srv)
    other = keygen(tmp_path / "other_ca", "ed25519")
    # A CA for this host that did not sign its certificate: the certified key itself
    # must be known (it is not), as with ssh.
    with pytest.raises(TransportError) as info:
        connect(srv, ca_line(other), tmp_path)
    assert info.value.status is Status.UNKNOWN
    assert "host key for h1 is not known" in str(info.value)
    seen: list[str] = []
    assert connect(srv, ca_line(other) + srv.known_hosts_lines(), tmp_path, seen) == "ok\n"
    assert seen == ["ssh-ed25519-cert-v01@openssh.com"]


def test_ca_for_other_hosts_is_not_used(ca: Path, tmp_path: Path,
                                        servers: list[SSHServer]) -> None:
    srv = cert_server(tmp_path / "s", ca)
    servers.append(srv)
    with pytest.raises(TransportError, match="host key for h1 is not known"):
        connect(srv, ca_line(ca, "*.example.com"), tmp_path)


def test_forged_signature_is_detected(ca: Path, tmp_path: Path) -> None:
    host_key = keygen(tmp_path / "hk", "ed25519")
    cert_file = sign_host_key(ca, host_key, "127.0.0.1")
    from upkeeper_ssh.known_hosts import parse

    blob = bytearray(base64.b64decode(cert_file.read_text().split()[1]))
    cert = certs.parse(bytes(blob))
    ca_entry = parse(ca_line(ca), "kh").entries[0]
    certs.check(cert, "127.0.0.1", ca_entry)  # the genuine one passes
    blob[40] ^= 0x01  # inside the certified public key
    forged = certs.parse(bytes(blob))
    with pytest.raises(certs.CertificateError, match="does not verify") as info:
        certs.check(forged, "127.0.0.1", ca_entry)
    assert info.value.severe
    with pytest.raises(certs.CertificateError, match="malformed"):
        certs.parse(bytes(blob[:60]))
