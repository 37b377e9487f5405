"""The local transport: commands run as child processes of upkeeper on this machine."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from upkeeper.models import CommandResult, Host
from upkeeper.transport import children
from upkeeper.transport.base import Transport, TransportError, command_text

_SUDO_ENV_WRAPPER = (
    'm=$1; s=; while IFS= read -r l; do [ "$l" = "$m" ] && break; s="$s$l\n"; done; '
    'eval "$s"; exec /bin/sh -c "$2"'
)


class _CappedReader(threading.Thread):
    """Drains a pipe into memory, keeping at most ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def run(self) -> None:
        with self.stream:
            while True:
                chunk = self.stream.read(65536)
                if not chunk:
                    return
                room = self.limit - self.size
                if room > 0:
                    self.chunks.append(chunk[:room])
                    self.size += min(room, len(chunk))
                if len(chunk) > room:
                    self.truncated = True

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class LocalTransport(Transport):
    """Runs commands on this machine with ``/bin/sh -c``, each in its own process group."""

    name = "local"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Kill commands still running (a timed-out check or an interrupted run)."""
        with self._lock:
            running = list(self._running)
        for proc in running:
            _kill_group(proc)

    def run(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        sudo: bool = False,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        text = command_text(command)
        argv = ["/bin/sh", "-c", text]
        proc_env = dict(os.environ)
        if sudo and os.geteuid() != 0:
            user = str(self.host.vars.get("ansible_become_user") or "root")
            if env:
                # sudo resets the environment: hand the values over on stdin instead.
                marker = f"@@upkeeper-env-{secrets.token_hex(8)}"
                argv = ["/bin/sh", "-c", _SUDO_ENV_WRAPPER, "upkeeper", marker, text]
                block = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
                stdin = (block + marker + "\n").encode() + data
                env = None
            argv = ["sudo", "-n", "-u", user, "--", *argv]
        if env:
            proc_env.update(env)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=proc_env,
                start_new_session=True,
                preexec_fn=children.preexec_hook(),
            )
        except OSError as exc:
            raise TransportError(f"cannot start /bin/sh: {exc}", host=self.host.name) from exc
        children.started(proc.pid)
        assert proc.stdout is not None and proc.stderr is not None
        with self._lock:
            self._running.add(proc)
        readers = [_CappedReader(proc.stdout, self.output_limit),
                   _CappedReader(proc.stderr, self.output_limit)]
        for r in readers:
            r.start()
        if stdin is not None and proc.stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
            children.ended(proc.pid)
        for r in readers:
            r.join(timeout=5)
        return CommandResult(
            command=text,
            exit_code=proc.returncode if proc.returncode is not None else -1,
            stdout=readers[0].text(),
            stderr=readers[1].text(),
            duration=time.monotonic() - started,
            timed_out=timed_out,
            truncated=readers[0].truncated or readers[1].truncated,
        )


def _feed(pipe: IO[bytes], data: bytes) -> None:
    try:
        with pipe:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass  # the command exited without reading all of its input


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
