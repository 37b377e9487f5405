"""Repository commands of one process that must not collide: a readers-writer gate per
repository, and one integrity check per repository per run whose outcome is shared.

Several hosts often back up to one repository (told apart by ``host:``/archive globs).
The runner checks hosts in parallel threads, and ``serve`` may run playbooks side by
side, so without this one host's ``restic check`` (exclusive lock) makes its siblings'
commands fail with "repository is locked" on a lock this process itself holds.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from upkeeper import CommandResult, Host

Access = Literal["none", "shared", "exclusive"]

#: Runs whose shared outcomes are kept; older runs' entries are dropped (``serve`` lives
#: for months). A run evicted early only loses sharing: its checks still serialise.
_KEEP_RUNS = 16
_URL_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*:(?:[a-z][a-z0-9+.-]*:)?//[^/@:]*):[^/@]*@",
                              re.IGNORECASE)
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
#: scp-style ``user@host:path`` (borg 1.x, restic sftp: without the prefix).
_SCP = re.compile(r"^([^/:@]+@)?([^/:@]+):(.*)$")


class GateTimeout(Exception):
    """Waited for this process's other use of the repository until the check's deadline."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class RepoGate:
    """Readers-writer gate: shared holders run together, an exclusive holder runs alone.
    A waiting exclusive holder stops new shared ones, so a check is not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._writers_waiting = 0
        self.holder = ""

    @contextmanager
    def hold(self, access: Access, timeout: float, who: str) -> Iterator[None]:
        if access == "none":
            yield
            return
        exclusive = access == "exclusive"
        deadline = time.monotonic() + timeout
        with self._cond:
            if exclusive:
                self._writers_waiting += 1
            try:
                while self._exclusive or (exclusive and self._shared) or (
                        not exclusive and self._writers_waiting):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise GateTimeout(self.holder or "another check")
                    self._cond.wait(left)
            finally:
                if exclusive:
                    self._writers_waiting -= 1
            if exclusive:
                self._exclusive = True
                self.holder = who
            else:
                self._shared += 1
                self.holder = self.holder or who
        try:
            yield
        finally:
            with self._cond:
                if exclusive:
                    self._exclusive = False
                else:
                    self._shared -= 1
                if not self._exclusive and not self._shared:
                    self.holder = ""
                self._cond.notify_all()


@dataclass
class _Outcome:
    owner: str
    done: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None


@dataclass
class Shared:
    """A command's result, and the host that ran it when it was not this one."""

    result: CommandResult
    ran_for: str = ""


class RepoCoordinator:
    """Gates by repository identity and integrity outcomes by run, for one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: weakref.WeakValueDictionary[str, RepoGate] = (
            weakref.WeakValueDictionary())
        self._runs: OrderedDict[str, dict[str, _Outcome]] = OrderedDict()

    def gate(self, identity: str) -> RepoGate:
        with self._lock:
            gate = self._gates.get(identity)
            if gate is None:
                gate = RepoGate()
                self._gates[identity] = gate
            return gate

    def once_per_run(self, run_id: str, key: str, who: str, timeout: float,
                     run: Callable[[], CommandResult]) -> Shared:
        """``run()`` for the first caller with this ``(run_id, key)``; later callers wait
        for it and get its result. If the first caller failed without a result, the next
        one runs the command itself. Without a run id nothing is shared."""
        if not run_id:
            return Shared(run())
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                outcomes = self._runs.setdefault(run_id, {})
                self._runs.move_to_end(run_id)
                while len(self._runs) > _KEEP_RUNS:
                    self._runs.popitem(last=False)
                outcome = outcomes.get(key)
                mine = outcome is None
                if outcome is None:
                    outcome = outcomes[key] = _Outcome(who)
            if mine:
                try:
                    outcome.result = run()
                finally:
                    if outcome.result is None:
                        with self._lock:
                            outcomes.pop(key, None)
                    outcome.done.set()
                return Shared(outcome.result)
            if not outcome.done.wait(max(0.0, deadline - time.monotonic())):
                raise GateTimeout(outcome.owner)
            if outcome.result is not None:
                return Shared(outcome.result, outcome.owner)


#: One per process: the tool's repository lock is what it models, and that is shared by
#: every thread of the runner and every run ``serve`` has in flight.
COORDINATOR = RepoCoordinator()


def machine_of(host: Host) -> str:
    """Which machine a host's local paths live on (same for every local-transport host)."""
    if host.connection == "local":
        return "local"
    port = host.vars.get("ansible_port") or host.vars.get("ansible_ssh_port") or ""
    return f"{host.connection}://{host.address.lower()}:{port}"


def repo_identity(repository: str, host: Host) -> str:
    """A normalised name of the repository: credentials and trailing slashes dropped,
    scheme and host name lower-cased (user names kept); a local path is qualified by
    the host's machine.

    When unsure, two spellings stay different: that costs a lock warning, whereas
    calling two repositories one would share one's check outcome with the other.
    """
    repo = _URL_CREDENTIALS.sub(r"\1@", repository.strip())
    if repo.startswith("file://"):
        repo = repo[len("file://"):]
    elif repo.startswith("local:"):
        repo = repo[len("local:"):]
    if repo.startswith("/"):
        return f"{machine_of(host)}|{posixpath.normpath(repo)}"
    scheme = _SCHEME.match(repo)
    if scheme and "://" in repo:
        head, _, rest = repo.partition("://")
        netloc, slash, path = rest.partition("/")
        user, at, hostport = netloc.rpartition("@")
        return f"{head.lower()}://{user}{at}{hostport.lower()}{slash}{path.rstrip('/')}"
    scp = _SCP.match(repo)
    if scp and not scheme:
        return f"ssh://{(scp.group(1) or '')}{scp.group(2).lower()}/{scp.group(3).rstrip('/')}"
    if scheme:
        return f"{scheme.group(1).lower()}:{repo[scheme.end():].rstrip('/')}"
    return f"{machine_of(host)}|{posixpath.normpath(repo)}"


def outcome_key(identity: str, argv: Sequence[str], env: Mapping[str, str], sudo: bool) -> str:
    """Same repository, same command, same credentials: the same outcome. The digest
    keeps secrets out of the key while telling different credentials apart."""
    digest = hashlib.sha256()
    for part in (identity, "\0".join(argv), str(sudo),
                 *(f"{k}={v}" for k, v in sorted(env.items()))):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\0\1")
    return digest.hexdigest()
