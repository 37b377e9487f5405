"""``upkeeper hostkeys scan``: fingerprints, --accept, and changed keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from upkeeper import Host
from upkeeper_ssh import SSHTransport, hostkeys
from upkeeper_ssh.cli import hostkeys_group
from upkeeper_ssh.testserver import SSHServer, keygen

pytestmark = pytest.mark.sshd


def scan(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(hostkeys_group, ["scan", *args])
    return res.exit_code, res.output


def test_scan_shows_fingerprints_without_writing(sshd: SSHServer) -> None:
    code, out = scan("127.0.0.1", "--port", str(sshd.port))
    assert code == 0
    assert out.count(f"[127.0.0.1]:{sshd.port} ") == 3
    for kind in ("ED25519", "ECDSA", "RSA"):
        assert f" {kind} SHA256:" in out
    assert "new" in out
    assert not hostkeys.upkeeper_known_hosts().exists()


def test_accept_then_connect(sshd: SSHServer) -> None:
    code, out = scan("127.0.0.1", "--port", str(sshd.port), "--accept")
    assert code == 0 and "accepted into" in out
    assert hostkeys.upkeeper_known_hosts().read_text().count(f"[127.0.0.1]:{sshd.port} ") == 3
    code, out = scan("127.0.0.1", "--port", str(sshd.port), "--accept")
    assert out.count("known") == 3 and "accepted" not in out
    t = SSHTransport(Host("fresh", vars={
        "ansible_host": "127.0.0.1", "ansible_port": sshd.port, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(sshd.client_key)}))
    try:
        assert t.run("echo trusted").stdout == "trusted\n"
    finally:
        t.close()


def test_changed_key_is_not_accepted(sshd: SSHServer, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    kind, blob = keygen(tmp_path / "other", "ed25519").with_suffix(".pub").read_text().split()[:2]
    kh.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    code, out = scan("127.0.0.1", "--port", str(sshd.port), "--accept", "--known-hosts", str(kh))
    assert code == 2
    assert "CHANGED" in out
    assert kh.read_text().count("ssh-ed25519") == 1


def test_unreachable_host(sshd: SSHServer) -> None:
    from upkeeper_ssh.testserver import free_port

    code, out = scan("127.0.0.1", "--port", str(free_port()), "--timeout", "2")
    assert code == 3 and "cannot scan" in out


def test_mounted_in_upkeeper_cli(sshd: SSHServer, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    kh = tmp_path / "accepted"
    proc = subprocess.run(
        [sys.executable, "-m", "upkeeper", "hostkeys", "scan", "127.0.0.1", "--port",
         str(sshd.port), "--accept", "--known-hosts", str(kh)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("accepted into") == 3
    assert kh.read_text().count(f"[127.0.0.1]:{sshd.port} ") == 3
