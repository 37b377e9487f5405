"""Plain data types shared by the core and plugins: statuses, results, hosts, runs and
report sections."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any


class Status(str, enum.Enum):
    """Outcome of a check, ordered by the monitoring-plugin convention.

    Exit codes: OK 0, WARN 1, CRIT 2, UNKNOWN 3, SKIPPED 0. When several results are
    combined the worst wins, and CRIT ranks above UNKNOWN (a known problem beats a
    missing answer).
    """

    OK = "OK"
    WARN = "WARN"
    CRIT = "CRIT"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]

    @property
    def severity(self) -> int:
        """Rank used to pick the worst status: SKIPPED < OK < WARN < UNKNOWN < CRIT."""
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """The worst of ``statuses``; OK for an empty iterable."""
        return max(statuses, key=lambda s: s.severity, default=cls.OK)

    @classmethod
    def from_exit_code(cls, code: int) -> Status:
        """Map a Nagios-style plugin exit code; anything unexpected is UNKNOWN."""
        return {0: cls.OK, 1: cls.WARN, 2: cls.CRIT}.get(code, cls.UNKNOWN)

    def __str__(self) -> str:
        return self.value


_EXIT_CODES = {
    Status.OK: 0,
    Status.WARN: 1,
    Status.CRIT: 2,
    Status.UNKNOWN: 3,
    Status.SKIPPED: 0,
}
_SEVERITY = {
    Status.SKIPPED: 0,
    Status.OK: 1,
    Status.WARN: 2,
    Status.UNKNOWN: 3,
    Status.CRIT: 4,
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Result:
    """One outcome of one check on one host.

    Checks usually build results with only ``status`` and ``summary`` (plus metrics and
    details); the runner fills in ``host``, ``check``, ``name`` and ``duration``.

    :param metrics: name -> number, stored in history for trends (e.g. ``/var:used_pct``).
    :param details: anything JSON-serialisable, shown in reports and ``--format json``.
    :param changed: True when an action changed the host.
    """

    status: Status
    summary: str
    metrics: dict[str, float] = field(default_factory=dict)
    details: Any = None
    changed: bool = False
    host: str = ""
    check: str = ""
    name: str = ""
    duration: float = 0.0
    started: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape used by ``--format json`` and reports."""
        return {
            "host": self.host,
            "check": self.check,
            "name": self.name or self.check,
            "status": self.status.value,
            "summary": self.summary,
            "metrics": dict(self.metrics),
            "details": self.details,
            "changed": self.changed,
            "duration_s": round(self.duration, 3),
        }


@dataclass
class CommandResult:
    """What one command run through a transport produced.

    ``exit_code`` is the command's own exit status. ``timed_out`` is set when the
    transport killed it; ``truncated`` when output went over the transport's cap.
    """

    command: str
    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    timed_out: bool = False
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    def check_ok(self, what: str | None = None) -> CommandResult:
        """Return self when the command succeeded, else raise :class:`CommandError`."""
        if not self.ok:
            raise CommandError(self, what)
        return self


class CommandError(RuntimeError):
    """A command exited non-zero (or timed out) where success was required."""

    def __init__(self, result: CommandResult, what: str | None = None) -> None:
        self.result = result
        label = what or (result.command.splitlines()[0][:80] if result.command else "command")
        reason = "timed out" if result.timed_out else f"exited {result.exit_code}"
        err = (result.stderr or result.stdout).strip().splitlines()
        tail = f": {err[-1][:200]}" if err else ""
        super().__init__(f"{label} {reason}{tail}")


@dataclass
class Host:
    """A managed machine as the inventory describes it.

    ``vars`` are already merged (all < parent group < child group < host). ``facts`` are
    gathered once per run by the runner (``os_family``, ``distro``, ``distro_version``,
    ``pkg_mgr``, ``hostname``, ``kernel``).
    """

    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)
    facts: MutableMapping[str, Any] = field(default_factory=dict)
    #: The OS family the host's transport reaches unless facts say otherwise (the first of
    #: ``Transport.os_families``); set by the runner when it picks the transport.
    transport_os_family: str | None = field(default=None, repr=False)
    #: ``var_origin(name)``: the ``file:line`` that sets a var (for error messages), when
    #: the inventory knows it.
    var_origin: Callable[[str], str | None] | None = field(default=None, repr=False,
                                                          compare=False)

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host") or self.name)

    @property
    def connection(self) -> str:
        """Transport name from ``ansible_connection``; ``ssh`` unless the host is local."""
        conn = self.vars.get("ansible_connection")
        if conn:
            return str(conn)
        if self.name in ("localhost", "127.0.0.1", "::1") and "ansible_host" not in self.vars:
            return "local"
        return "ssh"

    @property
    def os_family(self) -> str:
        """``linux``, ``windows``, ``darwin`` ...: from facts when gathered, else the
        ``os_family`` host var, else what the host's transport reaches (a Windows-only
        transport says ``windows``), else this machine's for a local host, else linux."""
        peek = getattr(self.facts, "peek", None)
        fam = peek("os_family") if peek else self.facts.get("os_family")
        fam = fam or self.vars.get("os_family") or self.transport_os_family
        if fam:
            return str(fam).lower()
        if self.connection == "local":
            return sys.platform.replace("win32", "windows").rstrip("0123456789") or "linux"
        return "linux"

    def get(self, key: str, default: Any = None) -> Any:
        """A host var, falling back to a fact, then ``default``."""
        if key in self.vars:
            return self.vars[key]
        return self.facts.get(key, default)


@dataclass
class Notification:
    """One message about a run: what changed and needs someone.

    ``results`` are the results worth telling about (new or changed problems, and
    recoveries); ``run`` gives the whole picture for templates. Text fields come
    without control characters or terminal escape sequences.
    """

    subject: str
    text: str
    run: RunRecord
    results: list[Result] = field(default_factory=list)
    status: Status = Status.OK
    html: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unreachable:
    """Why a host could not be reached, and the results that say only that.

    :param reason: the transport's error, secrets masked.
    :param status: the status those results got (UNKNOWN; CRIT for a changed host key).
    :param checks: names of the host's results that failed or were not run because of it.
    """

    reason: str
    status: Status = Status.UNKNOWN
    checks: frozenset[str] = frozenset()


@dataclass
class RunRecord:
    """One playbook run: what was asked and every result that landed."""

    run_id: str
    playbook: str
    started: datetime = field(default_factory=utcnow)
    finished: datetime | None = None
    results: list[Result] = field(default_factory=list)
    check_mode: bool = False
    interrupted: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    #: The hosts the run targeted (with vars and facts), for notifiers and reports.
    hosts: dict[str, Host] = field(default_factory=dict, repr=False)
    #: Hosts the run could not reach, by name (filled by the runner).
    unreachable: dict[str, Unreachable] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> Status:
        return Status.worst(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def counts(self) -> Mapping[str, int]:
        out = {s.value: 0 for s in Status}
        for r in self.results:
            out[r.status.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "status": self.status.value,
            "check_mode": self.check_mode,
            "interrupted": self.interrupted,
            "results": [r.to_dict() for r in self.results],
        }


MetricFormatter = Callable[[float], str]
#: Units a report section may name for a metric instead of giving a function.
METRIC_UNITS = ("number", "bytes", "percent", "hours", "days", "seconds", "celsius",
                "yes_no")


@dataclass(frozen=True)
class ReportSection:
    """A part of the client report that gathers the results of some checks.

    Plugins register them with ``upkeeper_register_report_sections``; results whose check
    matches no section are shown under "Other checks".

    :param key: unique id (``certs``), used as the HTML class ``section-<key>``.
    :param title: heading (``Certificates``).
    :param prefixes: check names it gathers, by prefix (``("acme_certs.",)``).
    :param metrics: metrics shown per result, in order: exact names, or ``*suffix`` for
        per-device names (``*:used_pct`` matches ``/var:used_pct``). Empty: the first
        few metrics by name.
    :param formats: how to show a metric: a unit from :data:`METRIC_UNITS` or a function
        of the value, keyed like ``metrics`` (exact name or ``*suffix``).
    :param order: sections are shown by ascending ``order``, then title.
    """

    key: str
    title: str
    prefixes: tuple[str, ...]
    metrics: tuple[str, ...] = ()
    formats: Mapping[str, str | MetricFormatter] = field(default_factory=dict)
    order: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.key, str) and self.key.isidentifier()):
            raise ValueError(f"report section key {self.key!r} is not an identifier")
        if isinstance(self.prefixes, str) or not self.prefixes or not all(
                isinstance(p, str) and p for p in self.prefixes):
            raise ValueError(f"report section {self.key!r}: prefixes must be a tuple of "
                             "non-empty check-name prefixes")
        for name, fmt in self.formats.items():
            if isinstance(fmt, str) and fmt not in METRIC_UNITS:
                raise ValueError(f"report section {self.key!r}: metric {name!r}: unknown "
                                 f"unit {fmt!r} (units: {', '.join(METRIC_UNITS)})")
            if not (isinstance(fmt, str) or callable(fmt)):
                raise ValueError(f"report section {self.key!r}: metric {name!r}: format "
                                 "must be a unit name or a function")

    def matches(self, check: str) -> bool:
        return any(check.startswith(p) for p in self.prefixes)

    def format_of(self, metric: str) -> str | MetricFormatter | None:
        """The format declared for ``metric``: by exact name, else by ``*suffix``."""
        if metric in self.formats:
            return self.formats[metric]
        for pattern, fmt in self.formats.items():
            if pattern.startswith("*") and metric.endswith(pattern[1:]):
                return fmt
        return None
