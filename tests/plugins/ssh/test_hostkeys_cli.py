"""``upkeeper hostkeys``: scan (hosts, host:port, inventories), --accept, forget, changed keys."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.plugins.ssh.conftest import start_server
from upkeeper import Host, Status, TransportError
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
    kh = tmp_path / "accepted"
    proc = subprocess.run(
        [sys.executable, "-m", "upkeeper", "hostkeys", "scan", "127.0.0.1", "--port",
         str(sshd.port), "--accept", "--known-hosts", str(kh)],
        capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("accepted into") == 3
    assert kh.read_text().count(f"[127.0.0.1]:{sshd.port} ") == 3


@pytest.fixture
def second_sshd(tmp_path: Path) -> Iterator[SSHServer]:
    srv = start_server(tmp_path / "second", host_key_types=("ecdsa",))
    yield srv
    srv.stop()


def connect(port: int, sshd: SSHServer, address: str = "127.0.0.1",
            **extra: object) -> str:
    t = SSHTransport(Host("fresh", vars={
        "ansible_host": address, "ansible_port": port, "ansible_user": "root",
        "ansible_ssh_private_key_file": str(sshd.client_key), **extra}))
    try:
        return t.run("echo trusted").stdout
    finally:
        t.close()


def write_inventory(tmp_path: Path, sshd: SSHServer, second: SSHServer) -> Path:
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_host": "127.0.0.1", "ansible_user": "root"},
        "children": {
            "web": {"hosts": {"web1": {"ansible_port": sshd.port},
                              "web2": {"ansible_port": sshd.port}}},
            "db": {"hosts": {"db1": {"ansible_port": second.port}}},
            "windows": {"hosts": {"win1": {"ansible_connection": "winrm"}}},
        }}}))
    return inv


def test_scan_inventory_each_host_at_its_own_port(sshd: SSHServer, second_sshd: SSHServer,
                                                  tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, sshd, second_sshd)
    code, out = scan("-i", str(inv), "--accept")
    assert code == 0, out
    recorded = hostkeys.upkeeper_known_hosts().read_text()
    assert recorded.count(f"[127.0.0.1]:{sshd.port} ") == 3
    assert recorded.count(f"[127.0.0.1]:{second_sshd.port} ecdsa-sha2-nistp256 ") == 1
    assert f"[127.0.0.1]:{sshd.port} ED25519 SHA256:" in out
    assert "(web1, web2)" in out and "(db1)" in out
    assert "skipped 1 host(s) that do not use SSH: win1" in out
    assert connect(second_sshd.port, second_sshd) == "trusted\n"


def test_scan_inventory_limit(sshd: SSHServer, second_sshd: SSHServer, tmp_path: Path) -> None:
    inv = write_inventory(tmp_path, sshd, second_sshd)
    code, out = scan("-i", str(inv), "--limit", "db", "--accept")
    assert code == 0, out
    recorded = hostkeys.upkeeper_known_hosts().read_text()
    assert f"[127.0.0.1]:{second_sshd.port} " in recorded
    assert f"[127.0.0.1]:{sshd.port} " not in recorded
    code, out = scan("-i", str(inv), "--limit", "nosuch")
    assert code == 3 and "no inventory host matches 'nosuch'" in out


def test_scan_inventory_reads_the_hosts_own_known_hosts_file(sshd: SSHServer,
                                                             tmp_path: Path) -> None:
    own = tmp_path / "acme_known_hosts"
    own.write_text(sshd.known_hosts_lines())
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {"web1": {
        "ansible_host": "127.0.0.1", "ansible_port": sshd.port,
        "ssh_known_hosts_file": str(own)}}}}))
    code, out = scan("-i", str(inv), "--accept")
    assert code == 0, out
    assert out.count("  known  (web1)") == 3 and "accepted" not in out
    assert not hostkeys.upkeeper_known_hosts().exists()


def test_scan_inventory_errors_are_one_line(tmp_path: Path, sshd: SSHServer) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts:\n    web1: {ansible_port: [\n")
    code, out = scan("-i", str(bad))
    assert code == 3 and str(bad) in out and "Traceback" not in out
    jumpy = tmp_path / "jumpy.yml"
    jumpy.write_text(yaml.safe_dump({"all": {"hosts": {
        "inner": {"ansible_host": "10.9.9.9", "ssh_jump_host": f"root@127.0.0.1:{sshd.port}"},
        "bad-port": {"ansible_port": "http"}}}}))
    code, out = scan("-i", str(jumpy))
    assert code == 3
    assert "inner: cannot scan: reached through jump host" in out
    assert "bad-port: cannot scan: bad port" in out


@pytest.mark.parametrize("form", ["{host}:{port}", "[{host}]:{port}"])
def test_host_port_arguments(sshd: SSHServer, form: str) -> None:
    code, out = scan(form.format(host="127.0.0.1", port=sshd.port), "--accept")
    assert code == 0, out
    assert out.count("accepted into") == 3


@pytest.mark.parametrize("args", [["127.0.0.1:99999"], ["127.0.0.1:ssh"], ["[::1"],
                                  ["[::1]x"], [":22"], ["--", "-oProxyCommand=x"], []])
def test_bad_host_arguments(args: list[str]) -> None:
    code, out = scan(*args)
    assert code == 3 and out.startswith("upkeeper: error: ") and out.count("\n") == 1


def test_ipv6_host(tmp_path: Path) -> None:
    srv = SSHServer(tmp_path / "v6")
    srv.extra_config = "ListenAddress ::1\n"
    srv.authorize("root")
    try:
        srv.start()
    except RuntimeError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    try:
        code, out = scan(f"[::1]:{srv.port}", "--accept")
        assert code == 0, out
        assert hostkeys.upkeeper_known_hosts().read_text().startswith(f"[::1]:{srv.port} ")
        assert connect(srv.port, srv, address="::1") == "trusted\n"
    finally:
        srv.stop()


def test_scan_silent_server(tmp_path: Path) -> None:
    from upkeeper_ssh.testserver import SilentServer

    mute = SilentServer()
    try:
        code, out = scan(f"127.0.0.1:{mute.port}", "--timeout", "1")
    finally:
        mute.close()
    assert code == 3
    assert f"[127.0.0.1]:{mute.port}: cannot scan: no SSH banner within 1s" in out
    assert mute.accepted == 1


def test_forget_removes_every_entry_of_the_host(sshd: SSHServer, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    name = f"[127.0.0.1]:{sshd.port}"
    other = keygen(tmp_path / "other", "ed25519").with_suffix(".pub").read_text().split()
    hashed = tmp_path / "hashed"
    hashed.write_text(sshd.known_hosts_lines())
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    kh.write_text(
        f"# keep me\n"                                              # 1
        f"{name} {other[0]} {other[1]}\n"                           # 2 plain: removed
        f"web9.example.com,{name} {other[0]} {other[1]}\n"          # 3 listed: removed
        f"[127.0.0.1]:1 {other[0]} {other[1]}\n"                    # 4 other port: kept
        f"@revoked {name} {other[0]} {other[1]}\n"                  # 5 marker: kept
        f"[127.0.0.*]:{sshd.port} {other[0]} {other[1]}\n"          # 6 wildcard: kept
        + hashed.read_text())                                       # 7-9 hashed: removed
    kh.chmod(0o640)
    before = kh.read_text()
    res = CliRunner().invoke(hostkeys_group, ["forget", f"127.0.0.1:{sshd.port}",
                                              "--known-hosts", str(kh)])
    assert res.exit_code == 0, res.output
    assert f"{name}: removed 5 entries from {kh} (line 2, 3, 7, 8, 9)" in res.output
    assert f"{kh}:6 matches {name} through the pattern" in res.output
    left = kh.read_text().splitlines()
    assert left == before.splitlines()[0:1] + before.splitlines()[3:6]
    assert (tmp_path / "kh.old").read_text() == before
    assert kh.stat().st_mode & 0o777 == 0o640


def test_changed_key_message_names_file_and_commands_that_fix_it(
        sshd: SSHServer, tmp_path: Path) -> None:
    # A long-lived process (serve) has the file cached; other processes forget and
    # re-accept the key; the next connection sees the new file.
    kh = hostkeys.upkeeper_known_hosts()
    kh.parent.mkdir(parents=True, exist_ok=True)
    impostor = keygen(tmp_path / "impostor", "ed25519").with_suffix(".pub").read_text().split()
    kh.write_text(f"# recorded long ago\n[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    with pytest.raises(TransportError) as info:
        connect(sshd.port, sshd)
    text = str(info.value)
    assert info.value.status is Status.CRIT
    assert f"{kh}:2 holds ED25519 SHA256:" in text
    commands = re.findall(r"`(upkeeper hostkeys [^`]+)`", text)
    assert commands == [f"upkeeper hostkeys forget 127.0.0.1:{sshd.port}",
                        f"upkeeper hostkeys scan 127.0.0.1:{sshd.port} --accept"]
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", *command.split()], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert connect(sshd.port, sshd) == "trusted\n"
    assert impostor[1] not in kh.read_text()
