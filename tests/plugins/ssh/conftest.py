"""A real OpenSSH server on 127.0.0.1 for the SSH transport tests (skipped without sshd)."""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ssh.sandbox import UserSandbox, sandbox_unavailable
from upkeeper import Host
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import SSHServer, find_sshd

PASSWORD_USER = "upk-ssh-pw"
SUDO_USER = "upk-ssh-sudo"
#: Test-only passwords of the throwaway users that exist only inside the test sshd.
PASSWORD = "pw-Test-1234"
SUDO_PASSWORD = "sudo-Test-5678"


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


#: Why each sandbox test user is missing in this session (absent: the user is there).
USER_SKIPS = pytest.StashKey[dict[str, str]]()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory,
         pytestconfig: pytest.Config) -> Iterator[SSHServer]:
    """The shared test sshd (ed25519, ecdsa and rsa host keys).

    As root it runs in a private mount namespace holding the test users PASSWORD_USER and
    SUDO_USER (see sandbox.py): the machine's /etc is never written. Where that sandbox
    cannot be made, ``password_user`` and ``sudo_user`` skip and say why.
    """
    reason = _can_run_sshd()
    if reason:
        pytest.skip(reason)
    no_sandbox = sandbox_unavailable()
    skips = pytestconfig.stash[USER_SKIPS] = {}
    sandbox = None if no_sandbox else UserSandbox(tmp_path_factory.mktemp("users"))
    srv = SSHServer(tmp_path_factory.mktemp("sshd"),
                    host_key_types=("ed25519", "ecdsa", "rsa"),
                    private_mounts=sandbox.mounts if sandbox else None)
    srv.authorize(login_user())
    try:
        if sandbox is None:
            skips.update({PASSWORD_USER: str(no_sandbox), SUDO_USER: str(no_sandbox)})
        else:
            sandbox.add_user(PASSWORD_USER, PASSWORD)
            if "/etc/sudoers.d" in sandbox.mounts and shutil.which("sudo"):
                key = srv.client_key.with_suffix(".pub").read_text()
                sandbox.add_user(SUDO_USER, SUDO_PASSWORD, sudo=True, authorized_key=key)
            else:
                skips[SUDO_USER] = "sudo is not installed (apt-get install sudo)"
        srv.start()
        yield srv
    finally:
        srv.stop()
        if sandbox:
            sandbox.cleanup()


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


@pytest.fixture(scope="session")
def password_user(sshd: SSHServer, pytestconfig: pytest.Config) -> str:
    """A user with a known password that exists only inside the test sshd's namespace."""
    return _sandbox_user(pytestconfig, PASSWORD_USER)


@pytest.fixture(scope="session")
def sudo_user(sshd: SSHServer, pytestconfig: pytest.Config) -> str:
    """A user allowed to sudo with its password, logging in with the test key; it and its
    sudoers entry exist only inside the test sshd's namespace."""
    return _sandbox_user(pytestconfig, SUDO_USER)


def _sandbox_user(config: pytest.Config, name: str) -> str:
    reason = config.stash[USER_SKIPS].get(name)
    if reason:
        pytest.skip(reason)
    return name
