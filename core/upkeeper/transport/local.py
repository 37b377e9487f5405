"""The local transport: commands run as child processes of upkeeper on this machine."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO

from upkeeper.models import CommandResult, Host
from upkeeper.transport import children
from upkeeper.transport.base import CappedOutput, Transport, TransportError, command_text
from upkeeper.transport.env import READ_ENV_SH, check_env, child_environ, env_block, new_end_marker

#: Once the command's own process has exited, output still arriving from children it left
#: behind holding its pipes is read for this many seconds; then the pipes are closed.
DRAIN_AFTER_EXIT = 0.25
#: How often the reader looks at whether the command has exited (while its pipes are open).
_POLL = 0.05

# sudo resets the environment: the values follow on stdin and this sets them as root.
_SUDO_ENV_WRAPPER = READ_ENV_SH + '; exec /bin/sh -c "$2"'


class LocalTransport(Transport):
    """Runs commands on this machine with ``/bin/sh -c``, each in its own process group."""

    name = "local"

    def __init__(self, host: Host) -> None:
        super().__init__(host)
        self._running: set[subprocess.Popen[bytes]] = set()
        self._killed: set[int] = set()
        self._lock = threading.Lock()
        # Counts close() calls: a run that began before a close is killed by it even when
        # its process was not registered yet (started, but run had not added it to
        # _running when close walked the set).
        self._closes = 0

    def close(self) -> None:
        """Kill commands still running (a timed-out check or an interrupted run); their
        ``run`` calls raise :class:`TransportError`. Later calls to ``run`` work again."""
        with self._lock:
            self._closes += 1
            running = list(self._running)
            self._killed.update(p.pid for p in running)
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
        extra = check_env(env)
        if sudo and os.geteuid() != 0:
            user = str(self.host.vars.get("ansible_become_user") or "root")
            if extra:
                marker = new_end_marker()
                argv = ["/bin/sh", "-c", _SUDO_ENV_WRAPPER, "upkeeper", marker, text]
                data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
                stdin = env_block(extra, marker) + data
                extra = {}
            argv = ["sudo", "-n", "-u", user, "--", *argv]
        # Children get a minimal environment: upkeeper's own holds every client's secrets.
        proc_env = child_environ(extra)
        with self._lock:
            generation = self._closes
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
        with self._lock:
            self._running.add(proc)
            closed_meanwhile = self._closes != generation
            if closed_meanwhile:
                self._killed.add(proc.pid)
        if closed_meanwhile:  # close() ran while the process was being started
            _kill_group(proc)
        if stdin is not None and proc.stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            threading.Thread(target=_feed, args=(proc.stdin, data), daemon=True).start()
        out, err = CappedOutput(self.output_limit), CappedOutput(self.output_limit)
        try:
            timed_out = _collect(proc, out, err, timeout)
        except BaseException:
            _kill_group(proc)
            raise
        finally:
            with self._lock:
                self._running.discard(proc)
                killed = proc.pid in self._killed
                self._killed.discard(proc.pid)
            children.ended(proc.pid)
        if killed:
            raise TransportError(f"command killed: the local transport to {self.host.name} "
                                 "was closed (run stopped or check abandoned)",
                                 host=self.host.name)
        return CommandResult(
            command=text,
            exit_code=proc.returncode if proc.returncode is not None else -1,
            stdout=out.text(),
            stderr=err.text(),
            duration=time.monotonic() - started,
            timed_out=timed_out,
            truncated=out.truncated or err.truncated,
        )


def _collect(proc: subprocess.Popen[bytes], out: CappedOutput, err: CappedOutput,
             timeout: float | None) -> bool:
    """Read both pipes until EOF or, once the command itself has exited, for at most
    :data:`DRAIN_AFTER_EXIT` more seconds: a background child (``nohup x &``) that keeps
    the pipes open must not stall the check or lose what was read. True if timed out."""
    assert proc.stdout is not None and proc.stderr is not None
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    exited_at: float | None = None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    try:
        while sel.get_map():
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= DRAIN_AFTER_EXIT:
                break
            if not timed_out and deadline is not None and now >= deadline:
                timed_out = True
                _kill_group(proc)
                continue
            wait = _POLL if exited_at is None else DRAIN_AFTER_EXIT
            if deadline is not None and not timed_out:
                wait = min(wait, max(0.0, deadline - now))
            for key, _ in sel.select(wait):
                chunk = os.read(key.fd, 65536)
                if chunk:
                    key.data.feed(chunk)
                else:
                    sel.unregister(key.fileobj)
    finally:
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    if proc.poll() is None:  # closed its output but still running
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
    return timed_out


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
