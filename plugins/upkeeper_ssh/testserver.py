"""A private OpenSSH server on 127.0.0.1 for tests and benchmarks (needs ``sshd``).

Everything lives in one directory: host keys, a client key, authorized_keys, the config,
the log and a clean HOME, so no rc file of the real user slows or changes commands.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/usr/bin/sshd")


def find_sshd() -> str | None:
    """Path of the sshd binary, or None when OpenSSH server is not installed."""
    for path in SSHD_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Run by ``sh -c`` inside the new mount namespace: bind-mount each (source, target) pair given
#: as arguments up to ``--``, then exec the rest (sshd). Paths are arguments, never script text.
_BIND_THEN_EXEC = ('while [ "$#" -gt 0 ] && [ "$1" != -- ]; do '
                   'mount --bind -- "$1" "$2" || exit 125; shift 2; done; shift; exec "$@"')


def private_namespace_argv(mounts: Mapping[str, Path], argv: list[str]) -> list[str]:
    """``argv`` run in a private mount namespace (``unshare``) in which each source path of
    ``mounts`` is bind-mounted over its target path; the rest of the machine sees no change."""
    pairs: list[str] = []
    for target, source in mounts.items():
        if not (os.path.isabs(target) and Path(source).is_absolute()):
            raise ValueError(f"private mount paths must be absolute: {source} -> {target}")
        if not os.path.lexists(target) or Path(source).is_dir() != os.path.isdir(target):
            raise ValueError(f"cannot bind {source} over {target}: target missing or "
                             "of another type")
        pairs += [str(source), target]
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", _BIND_THEN_EXEC, "sh", *pairs, "--", *argv]


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    """Write a new key pair with ssh-keygen (``path`` and ``path.pub``)."""
    args = ["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "upkeeper-test", "-f",
            str(path)]
    if kind == "rsa":
        args[4:4] = ["-b", "2048"]
    subprocess.run(args, check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return path


class SSHServer:
    """``sshd -D -f CONFIG -E LOG`` on a free port; ``start()``, ``stop()``, ``kill_all()``.

    ``private_mounts`` maps a target path (``/etc/passwd``) to a file or directory that is
    bind-mounted over it in a private mount namespace only this sshd and its sessions see
    (root and ``unshare`` needed): test users, sudoers entries and login records then never
    touch the machine's own files.
    """

    def __init__(self, directory: Path, *, port: int | None = None,
                 host_key_types: tuple[str, ...] = ("ed25519",),
                 extra_config: str = "", log_level: str = "VERBOSE",
                 private_mounts: Mapping[str, Path] | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.home = self.dir / "home"
        self.home.mkdir(exist_ok=True)
        self.auth_dir = self.dir / "authorized_keys"
        self.auth_dir.mkdir(exist_ok=True)
        self.config = self.dir / "sshd_config"
        self.log = self.dir / "sshd.log"
        self.pidfile = self.dir / "sshd.pid"
        self.host_keys = [keygen(self.dir / f"ssh_host_{t}_key", t) for t in host_key_types]
        self.client_key = keygen(self.dir / "id_ed25519")
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_config = extra_config
        self.log_level = log_level
        self.private_mounts = dict(private_mounts or {})

    def authorize(self, user: str, pubkey_file: Path | None = None) -> None:
        """Let ``user`` in with the client key (or ``pubkey_file``)."""
        pub = (pubkey_file or self.client_key.with_suffix(".pub")).read_text()
        with open(self.auth_dir / user, "a", encoding="ascii") as fh:
            fh.write(pub)

    def known_hosts_lines(self, name: str = "127.0.0.1") -> str:
        """known_hosts entries for this server's host keys under ``name``."""
        lines = []
        for key in self.host_keys:
            kind, blob = key.with_suffix(".pub").read_text().split()[:2]
            lines.append(f"[{name}]:{self.port} {kind} {blob}\n")
        return "".join(lines)

    def write_config(self) -> None:
        keys = "".join(f"HostKey {k}\n" for k in self.host_keys)
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\n{keys}"
            f"PidFile {self.pidfile}\nAuthorizedKeysFile {self.auth_dir}/%u .ssh/authorized_keys\n"
            "UsePAM no\nStrictModes no\nPermitRootLogin yes\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\nAllowTcpForwarding yes\n"
            "MaxStartups 512\nMaxSessions 256\nMaxAuthTries 20\n"
            f"Subsystem sftp internal-sftp\nLogLevel {self.log_level}\n"
            f"SetEnv HOME={self.home}\n{self.extra_config}\n")

    def start(self, wait: float = 10.0) -> SSHServer:
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("sshd is not installed (apt-get install openssh-server)")
        # sshd refuses to start without its privilege-separation directory.
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.write_config()
        argv = [sshd, "-D", "-f", str(self.config), "-E", str(self.log)]
        if self.private_mounts:
            argv = private_namespace_argv(self.private_mounts, argv)
        with open(self.dir / "sshd.stderr", "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = (self.dir / "sshd.stderr").read_text(errors="replace")
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: "
                                   f"{stderr[-1000:]}{self.log_text()[-2000:]}")
            if self._banner():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not answer on port {self.port} within {wait}s")

    def _banner(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                return s.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def session_pids(self) -> list[int]:
        """PIDs of this server's per-connection processes (children of the listener)."""
        if self.proc is None:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found

    def kill_all(self) -> None:
        """SIGKILL the listener and every session process: a crashed server."""
        children = self.session_pids()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class SilentServer:
    """Accepts TCP on 127.0.0.1 and never sends a byte (a hung sshd, a tarpit); counts the
    connections it accepted in ``accepted`` and their client addresses in ``peers``."""

    def __init__(self, backlog: int = 1024) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self.peers: list[tuple[str, int]] = []
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.peers.append(peer)
            self._held.append(conn)

    def close(self) -> None:
        # On Linux close() does not wake a thread blocked in accept(): the listener would
        # live on, accepting and counting connections after close. shutdown() wakes it.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
