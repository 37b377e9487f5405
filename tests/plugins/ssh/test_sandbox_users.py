"""The password and sudo test users exist for the test sshd only: this machine's /etc,
sudo state and login records are left exactly as they were."""

from __future__ import annotations

import hashlib
import os
import pwd
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ssh.conftest import PASSWORD_USER, SUDO_PASSWORD, SUDO_USER
from tests.plugins.ssh.sandbox import (
    ACCOUNT_FILES,
    LOGIN_RECORDS,
    STATE_DIRS,
    SUDOERS_DIR,
    sandbox_unavailable,
)
from upkeeper import Host
from upkeeper_ssh import SSHTransport
from upkeeper_ssh.testserver import private_namespace_argv

pytestmark = pytest.mark.sshd

ROOT = Path(__file__).resolve().parents[3]


def host_state() -> dict[str, tuple[object, ...]]:
    """Content hash, inode and mtime of each file the test users could touch."""
    state: dict[str, tuple[object, ...]] = {}
    paths = [Path(p) for p in (*ACCOUNT_FILES, *LOGIN_RECORDS, "/etc/sudoers")]
    for top in (SUDOERS_DIR, *STATE_DIRS):
        if os.path.isdir(top):
            state[top] = (sorted(str(p) for p in Path(top).rglob("*")),)
            paths += [p for p in Path(top).rglob("*") if p.is_file()]
    for path in paths:
        if path.is_file():
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path)] = (digest, st.st_ino, st.st_mtime_ns)
    return state


def test_users_exist_only_inside_the_test_sshd(
        host_vars: Callable[..., dict[str, Any]], password_user: str, sudo_user: str) -> None:
    for name in (password_user, sudo_user):
        with pytest.raises(KeyError):
            pwd.getpwnam(name)
    assert not list(Path(SUDOERS_DIR).glob("upkeeper-test-*"))
    t = SSHTransport(Host("sudohost", vars=host_vars(ansible_user=sudo_user,
                                                     ansible_become_password=SUDO_PASSWORD)))
    try:
        assert t.run("id -un").stdout.strip() == sudo_user
        assert t.run(f"getent passwd {password_user}").stdout.startswith(f"{password_user}:")
        assert f"upkeeper-test-{sudo_user}" in t.run(f"ls {SUDOERS_DIR}").stdout
        res = t.run("id -un", sudo=True)
        assert (res.exit_code, res.stdout.strip()) == (0, "root"), res.stderr
    finally:
        t.close()


def test_a_session_with_both_users_leaves_the_machine_unchanged(tmp_path: Path) -> None:
    reason = sandbox_unavailable()
    if reason:
        pytest.skip(reason)
    before = host_state()
    tests = ["tests/plugins/ssh/test_sandbox_users.py::test_users_exist_only_inside_the_test_sshd",
             "tests/plugins/ssh/test_sudo.py::test_sudo_with_password",
             "tests/plugins/ssh/test_auth_hostkeys.py::test_password_auth"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "--basetemp", str(tmp_path / "inner"), *tests],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    after = host_state()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert changed == []
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "3 passed" in out and "skipped" not in out, out[-3000:]
    for name in (PASSWORD_USER, SUDO_USER):
        with pytest.raises(KeyError):
            pwd.getpwnam(name)


def test_private_mounts_are_checked_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    for mounts, words in (({"etc/passwd": tmp_path / "file"}, "absolute"),
                          ({str(tmp_path / "missing"): tmp_path / "file"}, "target missing"),
                          ({str(tmp_path / "file"): tmp_path / "dir"}, "another type")):
        with pytest.raises(ValueError, match=words):
            private_namespace_argv(mounts, ["true"])
    argv = private_namespace_argv({str(tmp_path / "file"): tmp_path / "dir" / ".." / "file"},
                                  ["echo", "--", "$(id)"])
    # Paths and the command are arguments after the fixed script, never part of it.
    assert argv[:8] == ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                        argv[7]]
    assert "$(id)" not in argv[7] and argv[-3:] == ["echo", "--", "$(id)"]
