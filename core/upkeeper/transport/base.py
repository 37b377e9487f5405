"""The ``Transport`` contract every connection type implements."""

from __future__ import annotations

import importlib
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from upkeeper.models import CommandResult, Host, Status
from upkeeper.transport.facts import FACTS_SCRIPT, parse_posix_facts

#: Bytes of stdout (and, separately, stderr) a transport keeps per command by default.
DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024


class CappedOutput:
    """One output stream of a command kept in memory, at most ``limit`` bytes
    (``truncated`` tells that more came); for transports reading stdout and stderr."""

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT) -> None:
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        if len(chunk) > room:
            self.truncated = True

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


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

    Closing under a running command (the contract every transport follows): ``close``
    may be called from another thread while ``run`` is waiting; that is how the runner
    stops a run or abandons a hung check. The command is killed on the host and that
    ``run`` raises :class:`TransportError` (UNKNOWN), never returns a
    :class:`CommandResult`: the exit code of a command killed under it says nothing
    about the host, and judging it would report a false CRIT.
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
        """Release the connection and kill commands still running (their ``run`` raises
        :class:`TransportError`). Safe to call more than once, from another thread, and
        when never opened."""

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
        :raises TransportError: the host is unreachable, the connection dropped, or
            ``close`` was called while the command ran (it was killed).
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
