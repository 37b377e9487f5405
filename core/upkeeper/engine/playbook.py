"""Playbooks: the YAML model, loading with file:line errors, and per-host param rendering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from upkeeper.engine.templating import is_templated
from upkeeper.yamlsource import KeyPath, LocatedYAML, SourceError, load_yaml

if TYPE_CHECKING:
    from upkeeper.plugins import Registry

LONG_FORM_KEYS = {"name", "check", "params", "when", "timeout", "fix"}


class PlaybookError(SourceError):
    """A playbook is invalid; the message starts with ``file:line:column:``.

    ``problems`` holds every problem found (this one first); the message of one with
    several ends in ``(and N more problems)``.
    """

    def __init__(self, path: str | None, line: int | None, message: str,
                 column: int | None = None) -> None:
        super().__init__(path, line, message, column)
        self.problems: list[PlaybookError] = [self]

    @classmethod
    def of(cls, problems: list[PlaybookError]) -> PlaybookError:
        first = problems[0]
        more = len(problems) - 1
        if not more:
            return first
        err = cls(first.path, first.line, f"{first.reason} (and {more} more "
                  f"problem{'s' if more > 1 else ''})", first.column)
        err.problems = problems
        return err


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class CheckSpec(BaseModel):
    """One entry of a playbook's ``checks`` list."""

    model_config = ConfigDict(extra="forbid")

    check: str = Field(description="Registered check name, e.g. disk.usage")
    name: str | None = Field(None, description="Label shown in results (default: the check)")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="Check parameters; strings may use Jinja2")
    when: str | None = Field(None, description="Jinja2 expression over host vars and facts")
    timeout: float | None = Field(None, gt=0, description="Seconds before the check is UNKNOWN")
    fix: Any = Field(None, description="Fix(es) for this check's failures (see remediation docs)")

    @property
    def label(self) -> str:
        return self.name or self.check


class Playbook(BaseModel):
    """A playbook: which hosts, which checks, and how to run them."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="What this playbook is for")
    hosts: str = Field("all", description="Host pattern (Ansible syntax: a:b, a:&b, a:!b, web*)")
    checks: list[CheckSpec] = Field(min_length=1)
    description: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict,
                                 description="Extra vars for templating (host vars win)")
    forks: int = Field(25, ge=1, le=1000, description="Hosts run in parallel")
    timeout: float | None = Field(None, gt=0, description="Default per-check timeout, seconds")
    host_timeout: float = Field(3600, gt=0, description="Seconds for all checks of one host")
    serial: int | str | None = Field(
        None, description="Hosts per batch (count or percent like '25%'); a batch finishes "
                          "before the next starts")
    max_fail_percentage: float | None = Field(
        None, ge=0, le=100, description="Stop after a batch in which more than this percent "
                                        "of hosts had a CRIT or UNKNOWN result")
    allow_anytime: bool = Field(
        False, description="Let actions change hosts that have no maintenance_windows "
                           "(otherwise they are SKIPPED unless the run is given --now)")
    schedule: Any = Field(None, description="When `upkeeper serve` runs it (see scheduling docs)")
    notify: Any = Field(None, description="Notifiers to alert (see notifications docs)")
    report: Any = Field(None, description="Report written after each run (see reports docs)")
    fixes: Any = Field(None, description="Fixes attached to checks (see remediation docs)")

    _source: LocatedYAML | None = PrivateAttr(default=None)
    _raw_keys: dict[int, str] = PrivateAttr(default_factory=dict)

    @field_validator("hosts")
    @classmethod
    def _pattern_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("hosts pattern is empty")
        return v

    @field_validator("serial")
    @classmethod
    def _serial_shape(cls, v: int | str | None) -> int | str | None:
        if isinstance(v, int) and v < 1:
            raise ValueError("serial must be at least 1")
        if isinstance(v, str):
            text = v.strip()
            if not (text.endswith("%") and text[:-1].strip().isdigit()
                    and 0 < int(text[:-1]) <= 100):
                raise ValueError("serial is a host count or a percentage such as '25%'")
        return v

    def batches(self, hosts: list[Any]) -> list[list[Any]]:
        """Hosts split by ``serial`` (one batch when unset).

        A percentage is truncated as Ansible's ``pct_to_int`` does (10 hosts at 25% ->
        batches of 2), and is never below one host.
        """
        if self.serial is None or not hosts:
            return [hosts]
        if isinstance(self.serial, int):
            size = self.serial
        else:
            # Ansible's float arithmetic, quirk kept on purpose: 29% of 100 is 28.
            size = int((int(self.serial.strip()[:-1]) / 100.0) * len(hosts)) or 1
        return [hosts[i:i + size] for i in range(0, len(hosts), size)]

    @property
    def path(self) -> str:
        return self._source.path if self._source else "<playbook>"

    def line_of(self, key_path: KeyPath) -> int | None:
        """Source line of a key path such as ``("schedule", 0, "at")``."""
        return self._source.line_of(self._raw_path(key_path)) if self._source else None

    def error(self, key_path: KeyPath, message: str) -> PlaybookError:
        if self._source is None:
            return PlaybookError(self.path, None, message)
        pos = self._source.position(self._raw_path(key_path))
        return PlaybookError(self.path, pos[0] if pos else None, message,
                             pos[1] if pos else None)

    def _raw_path(self, key_path: KeyPath) -> KeyPath:
        """Map ``("checks", i, "params", k)`` back to a short-form item's YAML keys."""
        kp = tuple(key_path)
        if len(kp) >= 3 and kp[0] == "checks" and isinstance(kp[1], int):
            short = self._raw_keys.get(kp[1])
            if short is not None and kp[2] in ("params", "check"):
                return ("checks", kp[1], short, *kp[3:])
        return kp


def _expand_check_item(item: Any) -> tuple[Any, str | None]:
    """Short forms (``- disk.usage`` or ``- disk.usage: {...}``) to the long form."""
    if isinstance(item, str):
        return {"check": item}, None
    if isinstance(item, Mapping) and len(item) == 1:
        key = next(iter(item))
        if isinstance(key, str) and key not in LONG_FORM_KEYS:
            params = item[key]
            if params is None:
                params = {}
            return {"check": key, "params": params}, key
    return item, None


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_playbook(src: LocatedYAML) -> Playbook:
    """Validate parsed YAML as a playbook; the first problem raises PlaybookError."""
    data = src.data
    if not isinstance(data, Mapping):
        raise PlaybookError(src.path, 1, "a playbook is a YAML mapping with name, hosts and"
                                         f" checks, not {type(data).__name__}")
    data = dict(data)
    raw_keys: dict[int, str] = {}
    if isinstance(data.get("checks"), list):
        expanded = []
        for i, item in enumerate(data["checks"]):
            new, short = _expand_check_item(item)
            if short is not None:
                raw_keys[i] = short
            expanded.append(new)
        data["checks"] = expanded
    probe = Playbook.model_construct()
    probe._source, probe._raw_keys = src, raw_keys
    try:
        pb = Playbook.model_validate(data)
    except ValidationError as exc:
        raise PlaybookError.of([probe.error(tuple(err["loc"]), _describe(err))
                                for err in exc.errors()]) from None
    pb._source, pb._raw_keys = src, raw_keys
    return pb


def _describe(err: Any) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        model: type[BaseModel] = Playbook
        if len(loc) == 3 and loc[0] == "checks":
            model = CheckSpec
        return f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], model.model_fields)}"
    if err["type"] == "missing":
        return f"missing required key '{loc[-1]}'"
    return f"{_format_loc(loc)}: {err['msg']}"


def check_against_registry(pb: Playbook, registry: Registry, *,
                           strict: bool = False) -> None:
    """Every check must exist; literal (untemplated) params must fit its model; every
    template and ``when:`` must be valid Jinja2. All problems are collected.

    ``strict`` (``upkeeper validate``): a check whose plugin failed to load is an error
    too; a run instead reports it per host and runs the rest.

    :raises PlaybookError: the first problem, with every one in ``problems``.
    """
    problems = registry_problems(pb, registry, strict=strict) + template_problems(pb)
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise PlaybookError.of(problems)


def registry_problems(pb: Playbook, registry: Registry, *,
                      strict: bool = False) -> list[PlaybookError]:
    from upkeeper.plugins import UnknownNameError

    problems: list[PlaybookError] = []
    for i, spec in enumerate(pb.checks):
        try:
            cls = registry.check(spec.check)
        except UnknownNameError as exc:
            reason = registry.missing_check_reason(spec.check)
            if reason and not strict:
                continue  # its plugin is broken: the runner reports it per host
            problems.append(pb.error(("checks", i, "check"), reason or str(exc)))
            continue
        templated = {k for k, v in spec.params.items() if is_templated(v)}
        try:
            cls.Params.model_validate(spec.params)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                if loc and loc[0] in templated:
                    continue  # checked per host once rendered
                key = _format_loc(loc) or "params"
                problems.append(pb.error(("checks", i, "params", *loc),
                                         f"{spec.check}: param '{key}': {err['msg']}"
                                         f"{_param_hint(cls.Params, loc)}"))
    return problems


def template_problems(pb: Playbook) -> list[PlaybookError]:
    """Jinja2 syntax errors in params (at any depth), ``when:``, ``vars`` and ``notify``
    params: found before any host is contacted (a run would make each host UNKNOWN, or
    fail to send its alerts)."""
    if not is_templated([pb.vars, pb.notify, [c.params for c in pb.checks]]) \
            and not any(c.when for c in pb.checks):
        return []  # nothing to parse: do not import Jinja2
    import jinja2

    env = jinja2.Environment()
    problems: list[PlaybookError] = []

    def visit(value: Any, key_path: KeyPath, label: str) -> None:
        if isinstance(value, str) and is_templated(value):
            try:
                env.parse(value)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(pb.error(key_path, f"{label}: template syntax error: "
                                                   f"{exc.message} in {value!r}"))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                visit(v, (*key_path, str(k)), label)
        elif isinstance(value, list):
            for n, v in enumerate(value):
                visit(v, (*key_path, n), label)

    visit(pb.vars, ("vars",), "vars")
    visit(pb.notify, ("notify",), "notify")
    for i, spec in enumerate(pb.checks):
        visit(spec.params, ("checks", i, "params"), spec.check)
        if spec.when is not None:
            try:
                env.compile_expression(spec.when)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(pb.error(("checks", i, "when"), f"{spec.check}: when: "
                                         f"syntax error: {exc.message} in {spec.when!r}"))
    return problems


def _param_hint(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    if len(loc) == 1 and loc[0] not in model.model_fields:
        known = ", ".join(sorted(model.model_fields)) or "none"
        return f"{did_you_mean(loc[0], model.model_fields)} (known params: {known})"
    return ""


def load_playbook(path: str | Path, registry: Registry | None = None, *,
                  strict: bool = False) -> Playbook:
    """Load and validate a playbook file; with a registry also check names, params and
    templates (``strict``: see :func:`check_against_registry`).

    :raises PlaybookError: with file:line:column and a hint; ``problems`` has them all.
    """
    try:
        src = load_yaml(path)
    except PlaybookError:
        raise
    except SourceError as exc:
        raise PlaybookError(exc.path, exc.line, exc.reason, exc.column) from None
    pb = parse_playbook(src)
    if registry is not None:
        check_against_registry(pb, registry, strict=strict)
    return pb
