"""become / sudo over SSH with a password sent on stdin (a real sudoers entry, root only)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.plugins.ssh.conftest import SUDO_PASSWORD, login_user
from upkeeper import Host, TransportError
from upkeeper_ssh import SSHTransport

pytestmark = pytest.mark.sshd

Factory = Callable[..., SSHTransport]


@pytest.fixture
def sudo_transport(host_vars: Callable[..., dict[str, Any]], sudo_user: str) -> Iterator[Factory]:
    made: list[SSHTransport] = []

    def make(**extra: Any) -> SSHTransport:
        v = host_vars(ansible_user=sudo_user, ansible_become_password=SUDO_PASSWORD)
        v.update(extra)
        t = SSHTransport(Host("sudohost", vars={k: x for k, x in v.items() if x is not None}))
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_sudo_with_password(sudo_transport: Factory) -> None:
    t = sudo_transport()
    assert t.run("id -un").stdout.strip() == "upk-ssh-sudo"
    res = t.run("id -un", sudo=True)
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "root"
    assert "upkeeper-sudo" not in res.stderr and SUDO_PASSWORD not in res.stdout + res.stderr


def test_sudo_passes_stdin_and_env_not_the_password(sudo_transport: Factory) -> None:
    t = sudo_transport()
    res = t.run('printf "%s|" "$TOKEN"; cat', sudo=True, stdin="data\n", env={"TOKEN": "t'k"})
    assert res.stdout == "t'k|data\n"
    assert SUDO_PASSWORD not in res.stdout


def test_sudo_password_not_on_command_line(sudo_transport: Factory) -> None:
    t = sudo_transport()
    script = 'for f in /proc/[0-9]*/cmdline; do tr "\\000" " " < "$f" 2>/dev/null; echo; done'
    res = t.run(script, sudo=True)
    assert res.exit_code == 0
    assert "sudo -S -p" in res.stdout  # we did see the sudo process itself
    assert SUDO_PASSWORD not in res.stdout


def test_wrong_sudo_password_is_a_clear_error_and_not_retried(sudo_transport: Factory) -> None:
    t = sudo_transport(ansible_become_password="not-the-password")
    with pytest.raises(TransportError) as info:
        t.run("id -u", sudo=True)
    msg = str(info.value)
    assert "rejected the become password" in msg
    assert "not-the-password" not in msg
    started = time.monotonic()
    with pytest.raises(TransportError, match="rejected"):
        t.run("id -u", sudo=True)
    assert time.monotonic() - started < 0.5
    assert t.run("echo plain").stdout == "plain\n"  # non-sudo commands still work


def test_sudo_without_password_fails_cleanly(sudo_transport: Factory) -> None:
    t = sudo_transport(ansible_become_password=None)
    res = t.run("id -u", sudo=True, timeout=20)
    assert res.exit_code != 0
    assert "password is required" in res.stderr


def test_become_from_inventory_and_become_user(host_vars: Callable[..., dict[str, Any]],
                                               sudo_user: str) -> None:
    # Logged in as root, ansible_become makes every command run as ansible_become_user.
    v = host_vars(ansible_become=True, ansible_become_user=sudo_user)
    t = SSHTransport(Host("as-root", vars=v))
    try:
        assert login_user() == "root" or pytest.skip("needs root login")
        assert t.run("id -un").stdout.strip() == sudo_user
    finally:
        t.close()


def test_sudo_timeout_kills_root_command(sudo_transport: Factory) -> None:
    t = sudo_transport()
    res = t.run("sleep 60; echo never", sudo=True, timeout=1)
    assert res.timed_out
    assert "never" not in res.stdout
