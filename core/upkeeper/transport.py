"""The ``Transport`` interface every connection type implements, and the local transport."""

from __future__ import annotations

import importlib
import os
import secrets
import shlex
import signal
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import IO, Any, ClassVar

from upkeeper.facts import FACTS_SCRIPT, parse_posix_facts
from upkeeper.models import CommandResult, Host, Status

#: Bytes of stdout (and, separately, stderr) a transport keeps per command by default.
DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024


class TransportError(Exception):
    """The host cannot be reached or the connection broke.

    The runner turns it into a result for every check left on that host, with
    ``status`` (UNKNOWN by default; a changed SSH host key raises it with CRIT).
    """

    def __init__(self, message: str, *, host: str | None = None,
                 status: Status = Status.UNKNOWN) -> None:
        super().__init__(message)
        self.host = host
        self.status = status


def command_text(command: str | Sequence[str]) -> str:
    """A POSIX shell command line: strings pass through, argument lists are quoted."""
    if isinstance(command, str):
        return command
    return shlex.join(str(a) for a in command)


class Transport(ABC):
    """How the runner talks to one host.

    One instance per host per run, created with the host and opened lazily: the first
    ``run`` connects. All of the host's checks share it; the runner calls ``close`` at
    the end of the host, also after errors. Implementations raise :class:`TransportError`
    for connection problems and return a :class:`CommandResult` for anything the
    command itself did (non-zero exit, timeout).
    """

    #: The ``ansible_connection`` value that selects this transport.
    name: ClassVar[str] = ""
    #: Operating-system families this transport can reach (used for facts).
    os_families: ClassVar[tuple[str, ...]] = ("linux",)

    def __init__(self, host: Host) -> None:
        self.host = host
        self.output_limit = DEFAULT_OUTPUT_LIMIT

    def open(self) -> None:  # noqa: B027 - optional hook for transports that connect
        """Connect. Called lazily by ``run``; must be idempotent."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection. Safe to call more than once, and when never opened."""

    @abstractmethod
    def run(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        sudo: bool = False,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``command`` on the host and wait for it.

        :param command: a POSIX shell command line, or an argument list that the
            transport quotes (use a list whenever a value comes from params or vars).
        :param timeout: seconds before the command is killed (``timed_out`` is set).
        :param sudo: run as root (or ``ansible_become_user``) through sudo.
        :param stdin: data written to the command's standard input.
        :param env: extra environment; values never appear on a command line (safe
            for secrets such as ``RESTIC_PASSWORD``).
        :returns: the command's exit code and (capped) output.
        :raises TransportError: the host is unreachable or the connection dropped.
        """

    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult:
        """Run a PowerShell script (Windows transports). Others raise TransportError."""
        raise TransportError(f"the {self.name} transport cannot run PowerShell",
                             host=self.host.name)

    def gather_facts(self, timeout: float | None = 30) -> dict[str, Any]:
        """Facts about the host: ``os_family``, ``distro``, ``pkg_mgr``, ``hostname`` ..."""
        res = self.run(FACTS_SCRIPT, timeout=timeout)
        if res.timed_out:
            raise TransportError(f"gathering facts timed out after {timeout}s",
                                 host=self.host.name)
        return parse_posix_facts(res.stdout)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SUDO_ENV_WRAPPER = (
    'm=$1; s=; while IFS= read -r l; do [ "$l" = "$m" ] && break; s="$s$l\n"; done; '
    'eval "$s"; exec /bin/sh -c "$2"'
)


def lazy_transport(name: str, target: str,
                   os_families: tuple[str, ...] = ("linux",)) -> type[Transport]:
    """A registrable stand-in for ``module:Class`` that imports it only when a host uses it.

    Heavy client libraries (paramiko, pywinrm) then cost nothing to runs that never
    connect that way. Instantiating the stand-in returns an instance of the real class.
    """
    module_name, _, attr = target.partition(":")

    def real() -> type[Transport]:
        cls = getattr(importlib.import_module(module_name), attr)
        if not (isinstance(cls, type) and issubclass(cls, Transport)):
            raise TypeError(f"{target} is not a Transport")
        return cls

    def __new__(cls: type[Transport], host: Host) -> Transport:
        return real()(host)

    def run(self: Transport, *args: Any, **kwargs: Any) -> CommandResult:
        raise NotImplementedError  # never reached: __new__ returns the real transport

    namespace: dict[str, Any] = {
        "name": name, "os_families": os_families, "__new__": __new__, "run": run,
        "target": target, "load": staticmethod(real),
        "__doc__": f"The ``{name}`` transport ({target}), imported on first use.",
    }
    return type(f"Lazy_{name}_Transport", (Transport,), namespace)


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
            )
        except OSError as exc:
            raise TransportError(f"cannot start /bin/sh: {exc}", host=self.host.name) from exc
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
