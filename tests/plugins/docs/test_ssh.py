"""docs.collect over SSH against the test sshd (a real OpenSSH on 127.0.0.1): the same
facts as the local transport sees, the TLS probe runs on the host, and how long it took."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ssh.conftest import _can_run_sshd, login_user, start_server
from upkeeper import Host, Result
from upkeeper.testing import make_host, run_check
from upkeeper.transport.local import LocalTransport
from upkeeper_docs.collect import DocsCollect
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SSHServer

from .helpers import TLSListener, assert_no_secrets, make_cert, not_after, section

pytestmark = pytest.mark.sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    srv = start_server(tmp_path_factory.mktemp("sshd"))
    yield srv
    srv.stop()


def ssh_host(sshd: SSHServer, tmp: Path) -> Host:
    known = tmp / "known_hosts"
    known.write_text(sshd.known_hosts_lines())
    return Host("web1", vars={
        "ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": login_user(),
        "ansible_ssh_private_key_file": str(sshd.client_key),
        "ssh_known_hosts_file": str(known)})


def over_ssh(sshd: SSHServer, tmp: Path, params: dict[str, Any]) -> tuple[Result, float]:
    host = ssh_host(sshd, tmp)
    transport = SSHTransport(host)
    try:
        transport.run("true")  # connect first: the figure is the collection's own time
        started = time.monotonic()
        [res] = run_check(DocsCollect, params, host=host, transport=transport)
        return res, time.monotonic() - started
    finally:
        transport.close()


def test_over_ssh_like_local(sshd: SSHServer, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cert, key = make_cert("ssh-tls.example.test", 20)
    listener = TLSListener(tmp_path, cert, key)
    try:
        res, took = over_ssh(sshd, tmp_path, {"tls_ports": [listener.port]})
    finally:
        listener.close()
    doc = res.details["facts"]
    host = make_host("localhost")
    [local] = run_check(DocsCollect, {"tls_probe": False}, host=host,
                        transport=LocalTransport(host))
    here = local.details["facts"]
    assert doc["host"] == "web1" and doc["identity_keys"] == here["identity_keys"]
    for name in ("identity", "hardware", "software", "admins"):
        assert section(doc, name)["unavailable"] == section(here, name)["unavailable"], name
    assert section(doc, "software")["items"] == section(here, "software")["items"]
    assert section(doc, "identity")["source"].startswith("ssh: ")
    certs = {c["source"]: c for c in section(doc, "certificates")["items"]}
    assert certs[f"tcp/{listener.port}"]["not_after"] == not_after(cert)
    assert_no_secrets(doc)
    # Reported, not asserted (tests do not depend on the machine's speed): bench/README.
    print(f"docs.collect over SSH: {took:.2f}s")


def test_over_ssh_with_sudo(sshd: SSHServer, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The script also runs whole through the sudo wrapper (the test logs in as the
    current user: as root, sudo -n to root)."""
    if login_user() != "root":
        pytest.skip("sudo without a password needs root here")
    monkeypatch.setenv("HOME", str(tmp_path))
    res, _ = over_ssh(sshd, tmp_path, {"sudo": True, "tls_probe": False})
    doc = res.details["facts"]
    assert section(doc, "identity")["source"].startswith("ssh, sudo: ")
    assert section(doc, "software")["unavailable"] is None
    assert section(doc, "software")["items"]
    assert all(isinstance(p["process"], str) or "root" not in str(p["process"])
               for p in section(doc, "ports")["items"])
