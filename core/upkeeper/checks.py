"""Base classes for checks and actions, and the context the runner hands them."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from upkeeper.models import CommandResult, Host, Result, Status, utcnow

if TYPE_CHECKING:
    from upkeeper.store.history import HostHistory
    from upkeeper.transport.base import Transport


class Params(BaseModel):
    """Base for check parameter models: unknown keys are rejected.

    Validators are built on first use (``defer_build``), so loading many plugins stays
    cheap for runs that use few of their checks. Validation errors never quote the input
    (it may be a secret rendered from the environment).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True, hide_input_in_errors=True)


class NoParams(Params):
    """For checks that take no parameters."""


P = TypeVar("P", bound=BaseModel)


@dataclass
class CheckContext(Generic[P]):
    """Everything a check may use while it runs on one host.

    ``history`` is scoped to this host and check: past metric series for trends, and a
    small persistent key/value state (e.g. when a security update was first seen).
    """

    host: Host
    transport: Transport
    params: P
    history: HostHistory
    check_mode: bool = False
    run_id: str = ""
    timeout: float = 300.0
    now: datetime = field(default_factory=utcnow)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("upkeeper.check"))
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout

    @property
    def is_windows(self) -> bool:
        return self.host.os_family == "windows"

    def remaining(self) -> float:
        """Seconds left before the check's own timeout (never below one)."""
        return max(1.0, self._deadline - time.monotonic())

    def run(
        self,
        command: str | Sequence[str],
        timeout: float | None = None,
        sudo: bool = False,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """``transport.run`` with the timeout capped by what is left of the check's."""
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        return self.transport.run(command, timeout=limit, sudo=sudo, stdin=stdin, env=env)

    def run_powershell(self, script: str, timeout: float | None = None) -> CommandResult:
        limit = self.remaining() if timeout is None else min(timeout, self.remaining())
        return self.transport.run_powershell(script, timeout=limit)


class Check(Generic[P]):
    """A read-only check. Subclass, set ``name`` and ``Params``, implement ``run``.

    Example::

        class Uptime(Check[UptimeParams]):
            name = "system.uptime"
            Params = UptimeParams

            def run(self, ctx):
                out = ctx.run(["cat", "/proc/uptime"]).check_ok()
                days = float(out.stdout.split()[0]) / 86400
                status = Status.WARN if days > ctx.params.max_days else Status.OK
                return Result(status, f"up {days:.1f} days", metrics={"uptime_days": days})
    """

    #: Dotted name used in playbooks (``plugin.check``).
    name: ClassVar[str] = ""
    #: One line shown by ``upkeeper checks``.
    description: ClassVar[str] = ""
    #: Pydantic model validating the playbook's params for this check.
    Params: ClassVar[type[BaseModel]] = NoParams
    #: OS families (``linux``, ``windows``, ``darwin`` ...) the check supports; others
    #: get SKIPPED. ``("*",)`` means any.
    platforms: ClassVar[tuple[str, ...]] = ("linux",)
    #: Default seconds before the runner gives up on the check (playbook may override).
    timeout: ClassVar[float] = 300.0
    #: Actions change hosts; checks never do.
    is_action: ClassVar[bool] = False

    def run(self, ctx: CheckContext[P]) -> Result | Iterable[Result]:
        """Inspect the host and return one or more results."""
        raise NotImplementedError

    @classmethod
    def supports(cls, host: Host) -> bool:
        return "*" in cls.platforms or host.os_family in cls.platforms

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, description, kind, platforms and params JSON Schema (for ``upkeeper checks``)."""
        return {
            "name": cls.name,
            "description": cls.description or (cls.__doc__ or "").strip().partition("\n")[0],
            "kind": "action" if cls.is_action else "check",
            "platforms": list(cls.platforms),
            "params": cls.Params.model_json_schema(),
        }


class Action(Check[P]):
    """A check that changes the host (e.g. applying patches).

    Must honour ``ctx.check_mode`` (report what it would do, change nothing). The runner
    only starts an action on a host inside one of its maintenance windows when the host
    defines any (``maintenance_windows``); otherwise it is SKIPPED with the next window.
    """

    is_action = True
    #: Set False for actions that are safe at any time.
    needs_window: ClassVar[bool] = True


def as_results(value: Result | Iterable[Result] | None) -> list[Result]:
    """What ``Check.run`` returned, as a non-empty list of well-formed results.

    Nothing returned is one UNKNOWN result. Each result's fields are coerced
    (:func:`coerce_result`), so one sloppy result cannot break storing or reporting.
    :raises TypeError: an item is not a :class:`Result` (a bug in the check).
    """
    if isinstance(value, Result):
        return [coerce_result(value)]
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"check returned {type(value).__name__} instead of Result")
    try:
        items = list(value or [])
    except TypeError:
        raise TypeError(f"check returned {type(value).__name__} instead of Result") from None
    for item in items:
        if not isinstance(item, Result):
            raise TypeError(f"check returned {type(item).__name__} instead of Result")
    return [coerce_result(r) for r in items] or [Result(Status.UNKNOWN,
                                                        "check returned no result")]


#: Nesting depth kept in ``details``; deeper values become their ``str``.
_MAX_DEPTH = 32


def coerce_result(r: Result) -> Result:
    """Make a check's result safe to store and report, in place.

    ``status`` must be a :class:`Status` (or its name); ``summary`` becomes a string;
    metrics keep only finite numbers (the rest are dropped and named in the summary);
    ``details`` becomes JSON data (unknown objects as their ``str``, non-finite floats
    as strings); ``changed`` a bool; ``host``/``check``/``name`` strings.
    """
    notes: list[str] = []
    if not isinstance(r.status, Status):
        try:
            r.status = Status(str(getattr(r.status, "value", r.status)).upper())
        except ValueError:
            notes.append(f"invalid status {r.status!r}")
            r.status = Status.UNKNOWN
    if not isinstance(r.summary, str):
        r.summary = "" if r.summary is None else _safe_str(r.summary)
    metrics: dict[str, float] = {}
    raw_metrics = r.metrics if isinstance(r.metrics, Mapping) else {}
    if not isinstance(r.metrics, Mapping) and r.metrics:
        notes.append(f"metrics must be a mapping, not {type(r.metrics).__name__}")
    dropped = []
    for key, value in raw_metrics.items():
        number = _finite(value)
        if number is None:
            dropped.append(f"{_safe_str(key)}={_safe_str(value)[:20]}")
        else:
            metrics[_safe_str(key)] = number
    if dropped:
        notes.append("metrics dropped (not finite numbers): " + ", ".join(dropped[:5])
                     + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""))
    r.metrics = metrics
    r.details = _jsonable(r.details, 0)
    r.changed = bool(r.changed)
    for attr in ("host", "check", "name"):
        if not isinstance(getattr(r, attr), str):
            setattr(r, attr, _safe_str(getattr(r, attr) or ""))
    if notes:
        r.summary = f"{r.summary} [{'; '.join(notes)}]" if r.summary else "; ".join(notes)
    return r


def _finite(value: Any) -> float | None:
    if not isinstance(value, (int, float)):  # bools count as 0/1
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception as exc:  # a plugin object whose __str__ is broken
        return f"<{type(value).__name__}: str() failed: {type(exc).__name__}>"


def _jsonable(value: Any, depth: int) -> Any:
    """``value`` as JSON data: what ``json.dumps`` accepts and ``json.loads`` returns."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth >= _MAX_DEPTH:
        return _safe_str(value)
    if isinstance(value, Mapping):
        return {_safe_str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v, depth + 1) for v in value]
    return _safe_str(value)
