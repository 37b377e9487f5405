"""The plugin author's side of remediation: the :class:`Fix` base class, the failure
:class:`Signature` a fix handles, the concrete :class:`Plan` it proposes, and the
:class:`FixContext` through which it acts (every command recorded for the audit trail).

A fix never runs a check and never chooses its host: the remediation engine calls
``plan`` and ``apply`` on the host whose check failed, through that host's transport, and
verifies by re-running the check that failed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel

from upkeeper.checks import NoParams
from upkeeper.models import CommandResult, Host, Result, Status

if TYPE_CHECKING:
    from upkeeper.transport.base import Transport

__all__ = ["FAILING", "Fix", "FixContext", "FixRefused", "Plan", "Signature", "Tier",
           "signature"]

Tier = Literal["auto", "approve", "never"]
TIERS: tuple[Tier, ...] = ("auto", "approve", "never")
#: The statuses a fix may ever handle. UNKNOWN (timeouts, transport errors, unreachable
#: hosts, a check that crashed) says nothing about the host: it never triggers a fix.
FAILING = frozenset({Status.WARN, Status.CRIT})
#: Bytes of a command's stdout/stderr kept in the audit trail.
OUTPUT_KEPT = 4000

P = TypeVar("P", bound=BaseModel)


class FixRefused(Exception):
    """Raised by ``plan`` or ``apply`` when the fix must not act (a shared repository, a
    lock that is not provably stale, a path outside the allow-list). Recorded as a
    refusal, never retried as a failure."""


@dataclass(frozen=True)
class Signature:
    """Which failing results a fix handles.

    :param check: the check's registered name (``backup.restic``).
    :param statuses: statuses that match; anything outside :data:`FAILING` is ignored.
    :param summary: a regular expression searched in the result's summary.
    :param details: ``key -> regular expression`` searched in ``str(details[key])``
        (dotted keys reach nested mappings: ``lock.host``); a missing key never matches.
    """

    check: str
    statuses: frozenset[Status] = FAILING
    summary: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)

    def matches(self, result: Result) -> bool:
        if result.status not in FAILING or result.status not in self.statuses:
            return False
        if result.check != self.check:
            return False
        return patterns_match(self.summary, self.details, result)

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "statuses": sorted(s.value for s in self.statuses),
                "summary": self.summary, "details": dict(self.details)}


def signature(check: str, *statuses: Status | str, summary: str | None = None,
              **details: str) -> Signature:
    """``signature("backup.restic", "WARN", "CRIT", summary="stale")``; keyword ``details``
    use ``__`` for dots (``lock__host="web1"`` matches ``details["lock"]["host"]``).

    :raises ValueError: a status outside WARN/CRIT, or a pattern that does not compile.
    """
    chosen = frozenset(Status(str(getattr(s, "value", s)).upper()) for s in statuses) \
        or FAILING
    if not chosen <= FAILING:
        raise ValueError(f"a fix handles WARN and CRIT only, not "
                         f"{', '.join(sorted(s.value for s in chosen - FAILING))}")
    for pattern in [summary or "", *details.values()]:
        re.compile(pattern)
    return Signature(check, chosen, summary,
                     {k.replace("__", "."): v for k, v in details.items()})


def patterns_match(summary: str | None, details: Mapping[str, str], result: Any) -> bool:
    """Whether ``result``'s summary matches ``summary`` and each dotted key of its details
    matches its pattern (a missing key never matches)."""
    if summary is not None and not re.search(summary, result.summary or ""):
        return False
    for key, pattern in details.items():
        value = _dig(result.details, key)
        if value is None or not re.search(pattern, str(value)):
            return False
    return True


def _dig(details: Any, key: str) -> Any:
    value = details
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


@dataclass
class Plan:
    """A concrete change, shown before anything happens and applied exactly.

    :param summary: one line (``restart nginx (inactive since 10:02)``).
    :param changes: one JSON-able mapping per item changed (a file and its bytes, a lock
        id with its age, host and PID, a service and its state).
    :param commands: the argv lists ``apply`` will run, in order (shown and audited).
    :param predicts: how the checked state should look afterwards (shown; informational).
    :param data: anything else ``apply`` needs, JSON-able.
    """

    summary: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    commands: list[list[str]] = field(default_factory=list)
    predicts: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "changes": self.changes,
                "commands": self.commands, "predicts": self.predicts, "data": self.data}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Plan:
        return cls(str(raw.get("summary", "")), list(raw.get("changes", [])),
                   [list(c) for c in raw.get("commands", [])], str(raw.get("predicts", "")),
                   dict(raw.get("data", {})))

    def digest(self) -> str:
        """Hash of what ``apply`` would do (``commands`` and ``data``): an approval covers
        exactly this change. Descriptions that drift between runs (a lock's age, the
        summary's wording) are left out, so an approved plan still matches next run."""
        text = json.dumps({"commands": self.commands, "data": self.data}, sort_keys=True,
                          separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class FixContext(Generic[P]):
    """What a fix may use on the host whose check failed.

    ``result`` is the failing result that triggered the fix; ``check_params`` the params
    of the check that produced it, as rendered for this host (a repository, its
    password). Commands go through
    :meth:`run` / :meth:`run_powershell` so that each one, its exit code and output are
    recorded for the audit trail. ``check_mode`` is True while planning under
    ``--check`` (``plan`` must never change anything in any mode).
    """

    host: Host
    transport: Transport
    params: P
    result: Result
    check_mode: bool = False
    timeout: float = 300.0
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("upkeeper.fix"))
    commands: list[dict[str, Any]] = field(default_factory=list)
    check_params: Any = None

    @property
    def is_windows(self) -> bool:
        return self.host.os_family == "windows"

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        out = self.transport.run(command, timeout=timeout or self.timeout, sudo=sudo,
                                 stdin=stdin, env=env)
        self._record(out)
        return out

    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult:
        out = self.transport.run_powershell(script, timeout=timeout or self.timeout)
        self._record(out)
        return out

    def _record(self, out: CommandResult) -> None:
        self.commands.append({"command": out.command, "exit_code": out.exit_code,
                              "stdout": out.stdout[-OUTPUT_KEPT:],
                              "stderr": out.stderr[-OUTPUT_KEPT:],
                              "timed_out": out.timed_out})


class Fix(Generic[P]):
    """A fix for failures of one or more checks. Subclass, set ``name``, ``handles`` and
    ``Params``, implement ``plan`` and ``apply``.

    ``plan`` inspects the host (read-only) and returns the exact change, or None when
    there is nothing to do; it raises :class:`FixRefused` when acting would be unsafe.
    ``apply`` carries out exactly that plan and returns a one-line summary; a failed
    command should raise (``CommandError``) or :class:`FixRefused`. Success is decided by
    re-running the check that failed, never by ``apply``.
    """

    #: Dotted name used in playbooks (``system.service.restart``).
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    #: The failures this fix handles (a playbook may narrow them, never widen them).
    handles: ClassVar[tuple[Signature, ...]] = ()
    #: Detail keys naming the item a result is about (``mount``, ``service``): verify
    #: judges only the re-run's results about the same item.
    identity: ClassVar[tuple[str, ...]] = ()
    platforms: ClassVar[tuple[str, ...]] = ("linux",)
    #: The tier when the playbook names none: ``auto`` only for provably safe fixes.
    default_tier: ClassVar[Tier] = "approve"
    #: Runs only inside the host's maintenance window unless the playbook says
    #: ``safe_anytime: true`` (or this is False).
    needs_window: ClassVar[bool] = True
    #: Seconds after a fix in which the same failure is not a new trigger.
    settle: ClassVar[float] = 300.0
    timeout: ClassVar[float] = 300.0

    def plan(self, ctx: FixContext[P]) -> Plan | None:
        raise NotImplementedError

    def apply(self, ctx: FixContext[P], plan: Plan) -> str:
        raise NotImplementedError

    def judge(self, plan: Plan, before: Result,
              after: list[Result]) -> tuple[bool, str] | None:
        """Optional: whether the re-run check shows the planned item no longer failing
        (disk.usage: the mounts the plan cleaned are OK now), with a reason. None (the
        default) leaves it to the engine: every re-run result of the same name (and
        ``identity``) must be OK."""
        return None

    @classmethod
    def supports(cls, host: Host) -> bool:
        return "*" in cls.platforms or host.os_family in cls.platforms

    @classmethod
    def handles_result(cls, result: Result) -> bool:
        return any(sig.matches(result) for sig in cls.handles)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {"name": cls.name,
                "description": cls.description or (cls.__doc__ or "").strip().split("\n")[0],
                "handles": [s.to_dict() for s in cls.handles],
                "platforms": list(cls.platforms), "default_tier": cls.default_tier,
                "needs_window": cls.needs_window,
                "params": cls.Params.model_json_schema()}
