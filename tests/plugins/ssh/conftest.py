"""A real OpenSSH server on 127.0.0.1 for the SSH transport tests (skipped without sshd)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from upkeeper import Host
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SSHServer, find_sshd

PASSWORD_USER = "upk-ssh-pw"
SUDO_USER = "upk-ssh-sudo"
#: Test-only passwords for throwaway local users created (and deleted) by this suite.
PASSWORD = "pw-Test-1234"
SUDO_PASSWORD = "sudo-Test-5678"
SUDOERS_FILE = Path("/etc/sudoers.d/upkeeper-ssh-tests")


def _can_run_sshd() -> str | None:
    if find_sshd() is None:
        return "sshd is not installed (apt-get install openssh-server)"
    if os.geteuid() != 0 and not Path("/run/sshd").is_dir():
        return "/run/sshd is missing and we are not root to create it"
    return None


def start_server(directory: Path, **kw: Any) -> SSHServer:
    """A started private sshd in ``directory``; the current user may log in with its key."""
    srv = SSHServer(directory, **kw)
    srv.authorize(pwd.getpwuid(os.geteuid()).pw_name)
    return srv.start()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """The shared test sshd (ed25519, ecdsa and rsa host keys)."""
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    srv = start_server(tmp_path_factory.mktemp("sshd"),
                       host_key_types=("ed25519", "ecdsa", "rsa"))
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME and XDG data dir: no real known_hosts, keys or agent are touched."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


@pytest.fixture
def known_hosts(tmp_path: Path, sshd: SSHServer) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_lines())
    return path


def login_user() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def host_vars(sshd: SSHServer, known_hosts: Path) -> Callable[..., dict[str, Any]]:
    """Inventory variables reaching the test sshd with key auth; keyword args override."""

    def make(**extra: Any) -> dict[str, Any]:
        v: dict[str, Any] = {
            "ansible_host": "127.0.0.1",
            "ansible_port": sshd.port,
            "ansible_user": login_user(),
            "ansible_ssh_private_key_file": str(sshd.client_key),
            "ssh_known_hosts_file": str(known_hosts),
        }
        v.update(extra)
        return {k: val for k, val in v.items() if val is not None}

    return make


@pytest.fixture
def transport(host_vars: Callable[..., dict[str, Any]]) -> Iterator[SSHTransport]:
    t = SSHTransport(Host("target", vars=host_vars()))
    yield t
    t.close()


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _make_user(name: str, password: str) -> None:
    if not _user_exists(name):
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", name], check=True,
                       capture_output=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True,
                   capture_output=True)


def _drop_user(name: str) -> None:
    with contextlib.suppress(subprocess.CalledProcessError):
        subprocess.run(["userdel", "--remove", name], check=True, capture_output=True)


@pytest.fixture(scope="session")
def password_user() -> Iterator[str]:
    """A local user with a known password (root only; deleted afterwards)."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a password test user needs root and useradd")
    _make_user(PASSWORD_USER, PASSWORD)
    yield PASSWORD_USER
    _drop_user(PASSWORD_USER)


@pytest.fixture(scope="session")
def sudo_user(sshd: SSHServer) -> Iterator[str]:
    """A user allowed to sudo with its password, logging in with the test key."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creating a sudo test user needs root and useradd")
    if not shutil.which("sudo") or not Path("/etc/sudoers.d").is_dir():
        pytest.skip("sudo is not installed (apt-get install sudo)")
    _make_user(SUDO_USER, SUDO_PASSWORD)
    SUDOERS_FILE.write_text(f"{SUDO_USER} ALL=(ALL) ALL\n")
    SUDOERS_FILE.chmod(0o440)
    # sshd reads authorized_keys as the user, who cannot see into pytest's tmp dirs.
    entry = pwd.getpwnam(SUDO_USER)
    ssh_dir = Path(entry.pw_dir) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(sshd.client_key.with_suffix(".pub").read_text())
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    yield SUDO_USER
    SUDOERS_FILE.unlink(missing_ok=True)
    _drop_user(SUDO_USER)
