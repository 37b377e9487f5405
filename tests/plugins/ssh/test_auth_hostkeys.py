"""Authentication (keys, passphrases, passwords) and host key verification on a real sshd."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest

from tests.plugins.ssh.conftest import PASSWORD
from upkeeper import Host, Status, TransportError
from upkeeper_ssh import SSHTransport, auth, hostkeys
from upkeeper_ssh.testserver import SSHServer, keygen

pytestmark = pytest.mark.sshd

Vars = Callable[..., dict[str, Any]]


def run_once(vars: dict[str, Any], command: str = "echo ok") -> str:
    t = SSHTransport(Host("h1", vars=vars))
    try:
        return t.run(command).stdout
    finally:
        t.close()


def connections(sshd: SSHServer) -> int:
    return sshd.log_text().count("Connection from 127.0.0.1")


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_other_key_types(sshd: SSHServer, host_vars: Vars, tmp_path: Path, kind: str) -> None:
    key = keygen(tmp_path / f"id_{kind}", kind)
    sshd.authorize("root", key.with_suffix(".pub"))
    assert run_once(host_vars(ansible_ssh_private_key_file=str(key))) == "ok\n"


def test_encrypted_key_with_passphrase(sshd: SSHServer, host_vars: Vars, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id_enc", "ed25519", passphrase="open sesame")
    sshd.authorize("root", key.with_suffix(".pub"))
    v = host_vars(ansible_ssh_private_key_file=str(key),
                  ansible_ssh_private_key_passphrase="open sesame")
    assert run_once(v) == "ok\n"
    v["ansible_ssh_private_key_passphrase"] = "wrong words"
    # Same file, same mtime: the loaded key is cached for the run, so only a new file
    # re-reads it.
    other = keygen(tmp_path / "id_enc2", "ed25519", passphrase="open sesame")
    v["ansible_ssh_private_key_file"] = str(other)
    with pytest.raises(TransportError) as info:
        run_once(v)
    assert "wrong words" not in str(info.value)
    assert "id_enc2" in str(info.value)
    v.pop("ansible_ssh_private_key_passphrase")
    with pytest.raises(TransportError, match="encrypted: set ansible_ssh_private_key_passphrase"):
        run_once(v)


def test_keys_are_loaded_once(sshd: SSHServer, tmp_path: Path) -> None:
    key = keygen(tmp_path / "id_cache", "ed25519")
    assert auth.load_key(str(key)) is auth.load_key(str(key))


def test_wrong_key_fails_without_retry(sshd: SSHServer, host_vars: Vars, tmp_path: Path) -> None:
    stranger = keygen(tmp_path / "id_stranger", "ed25519")
    before = connections(sshd)
    with pytest.raises(TransportError) as info:
        run_once(host_vars(ansible_ssh_private_key_file=str(stranger)))
    assert "authentication as root failed" in str(info.value)
    assert info.value.status is Status.UNKNOWN
    assert connections(sshd) - before == 1


def test_password_auth(host_vars: Vars, password_user: str) -> None:
    v = host_vars(ansible_user=password_user, ansible_ssh_private_key_file=None,
                  ansible_password=PASSWORD)
    assert run_once(v, "id -un") == f"{password_user}\n"


def test_wrong_password_is_not_logged_or_shown(host_vars: Vars, password_user: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    v = host_vars(ansible_user=password_user, ansible_ssh_private_key_file=None,
                  ansible_ssh_pass="Wrong-Pass-42")
    with pytest.raises(TransportError) as info:
        run_once(v)
    assert "tried password" in str(info.value)
    assert "Wrong-Pass-42" not in str(info.value)
    assert "Wrong-Pass-42" not in caplog.text
    assert "Wrong-Pass-42" not in repr(SSHTransport(Host("x", vars=v)).settings)


def test_unknown_host_key(host_vars: Vars, sshd: SSHServer) -> None:
    with pytest.raises(TransportError) as info:
        run_once(host_vars(ssh_known_hosts_file=None))
    err = info.value
    assert err.status is Status.UNKNOWN
    assert "host key for h1 is not known (ED25519 SHA256:" in str(err)
    assert f"`upkeeper hostkeys scan 127.0.0.1:{sshd.port} --accept`" in str(err)


def test_changed_host_key_is_crit(host_vars: Vars, sshd: SSHServer, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor", "ed25519").with_suffix(".pub").read_text().split()
    bad = tmp_path / "bad_known_hosts"
    bad.write_text(f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    with pytest.raises(TransportError) as info:
        run_once(host_vars(ssh_known_hosts_file=str(bad)))
    assert info.value.status is Status.CRIT
    assert "HOST KEY FOR h1 HAS CHANGED" in str(info.value)


def test_known_key_of_other_type_is_used(host_vars: Vars, sshd: SSHServer,
                                         tmp_path: Path) -> None:
    # Only the RSA key is recorded: the transport must ask the server for that type.
    only_rsa = tmp_path / "rsa_known_hosts"
    only_rsa.write_text("".join(line for line in sshd.known_hosts_lines().splitlines(True)
                                if " ssh-rsa " in line))
    assert run_once(host_vars(ssh_known_hosts_file=str(only_rsa))) == "ok\n"


def test_users_known_hosts_and_hashed_entries(host_vars: Vars, sshd: SSHServer,
                                              tmp_path: Path) -> None:
    user_file = Path(os.environ["HOME"]) / ".ssh" / "known_hosts"
    user_file.write_text(sshd.known_hosts_lines())
    subprocess.run(["ssh-keygen", "-H", "-f", str(user_file)], check=True, capture_output=True)
    assert "|1|" in user_file.read_text()
    assert run_once(host_vars(ssh_known_hosts_file=None)) == "ok\n"


def test_checking_off_warns_every_time(host_vars: Vars,
                                       caplog: pytest.LogCaptureFixture) -> None:
    v = host_vars(ssh_known_hosts_file=None, ssh_host_key_checking=False)
    for _ in range(2):
        with caplog.at_level(logging.WARNING, logger="upkeeper.ssh"):
            assert run_once(v) == "ok\n"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all("h1" in r.getMessage() and "not verified" in r.getMessage() for r in warnings)


def test_fingerprint_matches_ssh_keygen(sshd: SSHServer) -> None:
    for path in sshd.host_keys:
        pub = path.with_suffix(".pub")
        expected = subprocess.run(["ssh-keygen", "-lf", str(pub)], capture_output=True,
                                  text=True, check=True).stdout.split()[1]
        kind, blob = pub.read_text().split()[:2]
        key = paramiko.PKey.from_type_string(kind, __import__("base64").b64decode(blob))
        assert hostkeys.fingerprint(key) == expected


def test_agent_used_only_when_asked(host_vars: Vars, monkeypatch: pytest.MonkeyPatch) -> None:
    t = SSHTransport(Host("h", vars=host_vars()))
    assert not t.settings.use_agent and not t.settings.look_for_keys
    t = SSHTransport(Host("h", vars=host_vars(ansible_ssh_private_key_file=None)))
    assert t.settings.use_agent and t.settings.look_for_keys
    t = SSHTransport(Host("h", vars=host_vars(ssh_use_agent=True)))
    assert t.settings.use_agent


def test_default_identity_is_found(host_vars: Vars, sshd: SSHServer) -> None:
    home_key = Path(os.environ["HOME"]) / ".ssh" / "id_ed25519"
    home_key.write_bytes(sshd.client_key.read_bytes())
    home_key.chmod(0o600)
    assert run_once(host_vars(ansible_ssh_private_key_file=None)) == "ok\n"
