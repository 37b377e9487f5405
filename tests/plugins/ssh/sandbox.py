"""Throwaway local users that exist only for the test sshd, never on the machine itself.

``UserSandbox`` keeps private copies of the account files (/etc/passwd, shadow, group,
gshadow), a private /etc/sudoers.d and empty stand-ins for sudo's and sshd's state and login
records. ``mounts`` maps each real path to its stand-in; ``SSHServer(private_mounts=...)``
bind-mounts them in a private mount namespace, so sshd, PAM and sudo in its sessions see the
test users while /etc of this machine is never written (see test_sandbox_users.py).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

#: Account files copied into the sandbox (those missing on this machine are left out).
ACCOUNT_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
#: Directories replaced by an empty private one: sudo's lecture and timestamp records.
STATE_DIRS = ("/var/lib/sudo", "/run/sudo")
#: Login records sshd appends to; replaced by empty private files.
LOGIN_RECORDS = ("/var/log/wtmp", "/var/log/btmp", "/var/log/lastlog")
SUDOERS_DIR = "/etc/sudoers.d"
#: Test users get ids from this range, far above ordinary accounts.
FIRST_ID, LAST_ID = 61000, 64999
NAME = re.compile(r"[a-z_][a-z0-9_-]{0,30}\Z")


def sandbox_unavailable() -> str | None:
    """Why private test users cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "private test users need root (to start sshd in a mount namespace)"
    for tool in ("unshare", "mount", "openssl"):
        if shutil.which(tool) is None:
            return f"private test users need {tool}, which is not installed"
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot make a private mount namespace: {probe.stderr.strip()[:200]}"
    return None


def sha512_crypt(password: str) -> str:
    """A ``$6$`` crypt hash as /etc/shadow holds it (password on stdin, never in argv)."""
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    if not out.startswith("$6$"):
        raise RuntimeError("openssl passwd -6 gave no SHA-512 crypt hash")
    return out


def _clone_mode(source: str, copy: Path) -> None:
    st = os.stat(source)
    os.chown(copy, st.st_uid, st.st_gid)
    os.chmod(copy, stat.S_IMODE(st.st_mode))


class UserSandbox:
    """Private account files in ``root``; homes in a world-traversable temp dir (sshd reads
    authorized_keys as the user, who cannot enter pytest's 0700 tmp dirs)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounts: dict[str, Path] = {}
        self.homes = Path(tempfile.mkdtemp(prefix="upk-ssh-homes-"))
        self.homes.chmod(0o755)
        for target in ACCOUNT_FILES:
            if os.path.isfile(target):
                copy = self._path(target)
                shutil.copyfile(target, copy)
                _clone_mode(target, copy)
                self.mounts[target] = copy
        if os.path.isdir(SUDOERS_DIR):
            copy = self._path(SUDOERS_DIR)
            shutil.copytree(SUDOERS_DIR, copy, symlinks=True)
            _clone_mode(SUDOERS_DIR, copy)
            self.mounts[SUDOERS_DIR] = copy
        for target in STATE_DIRS:
            if os.path.isdir(target):
                copy = self._path(target)
                copy.mkdir()
                _clone_mode(target, copy)
                self.mounts[target] = copy
        for target in LOGIN_RECORDS:
            if os.path.isfile(target):
                copy = self._path(target)
                copy.touch()
                _clone_mode(target, copy)
                self.mounts[target] = copy

    def _path(self, target: str) -> Path:
        path = self.root / target.strip("/").replace("/", "__")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _free_id(self) -> int:
        used: set[int] = set()
        for target in ("/etc/passwd", "/etc/group"):
            for line in self.mounts[target].read_text().splitlines():
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    used.add(int(fields[2]))
        for candidate in range(FIRST_ID, LAST_ID + 1):
            if candidate not in used:
                return candidate
        raise RuntimeError("no free uid for a test user")

    def _append(self, target: str, line: str) -> None:
        # Appending keeps the inode, so a namespace that has it mounted sees the new line.
        if target in self.mounts:
            with open(self.mounts[target], "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    def add_user(self, name: str, password: str, *, sudo: bool = False,
                 authorized_key: str | None = None) -> Path:
        """Add ``name`` (own group, /bin/sh, home under ``homes``); returns the home."""
        if not NAME.match(name):
            raise ValueError(f"bad test user name {name!r}")
        uid = self._free_id()
        home = self.homes / name
        home.mkdir(mode=0o755)
        days = int(time.time() // 86400)
        self._append("/etc/passwd", f"{name}:x:{uid}:{uid}:upkeeper test user:{home}:/bin/sh")
        self._append("/etc/shadow", f"{name}:{sha512_crypt(password)}:{days}:0:99999:7:::")
        self._append("/etc/group", f"{name}:x:{uid}:")
        self._append("/etc/gshadow", f"{name}:!::")
        if authorized_key:
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700)
            (ssh_dir / "authorized_keys").write_text(authorized_key)
            for path in (ssh_dir, ssh_dir / "authorized_keys"):
                os.chown(path, uid, uid)
        os.chown(home, uid, uid)
        if sudo:
            if SUDOERS_DIR not in self.mounts:
                raise RuntimeError("sudo is not installed (no /etc/sudoers.d)")
            drop_in = self.mounts[SUDOERS_DIR] / f"upkeeper-test-{name}"
            drop_in.write_text(f"{name} ALL=(ALL) ALL\n")
            drop_in.chmod(0o440)
        return home

    def cleanup(self) -> None:
        """Remove the homes and the copies (the shadow copy holds the machine's hashes)."""
        shutil.rmtree(self.homes, ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)
