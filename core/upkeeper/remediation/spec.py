"""A playbook's fixes: ``fix:`` on a check or the ``fixes:`` list, validated with
file:line errors, and resolved to (check index, fix class, settings) bindings.

::

    checks:
      - check: system.service
        params: {service: nginx}
        fix: system.service.restart          # or a mapping as in `fixes:`
    fixes:
      - fix: disk.cleanup
        for: disk.usage                      # a check's name or label in this playbook
        tier: approve                        # auto | approve | never
        match: {statuses: [CRIT], details: {mount: "^/var$"}}
        params: {paths: ["/var/tmp/app/*"], older_than: 7d}
        budget: {attempts: 3, per: 1h, backoff: 5m, quarantine_after: 3}

There is no way to turn auditing off: an unknown key (``audit: false``) is an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from upkeeper.engine.playbook import Playbook, PlaybookError, did_you_mean
from upkeeper.models import Status
from upkeeper.remediation.fix import FAILING, TIERS, Fix, Signature

if TYPE_CHECKING:
    from upkeeper.remediation.registry import FixRegistry

__all__ = ["Binding", "BudgetSpec", "FixSpec", "MatchSpec", "bindings", "fix_problems"]

if TYPE_CHECKING:
    Duration = timedelta
else:
    from upkeeper.measures import Duration


class BudgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(3, ge=1, le=1000, description="fix attempts per host per period")
    per: Duration = Field(timedelta(hours=1), description="the period (1h, 1d ...)")
    backoff: Duration = Field(timedelta(minutes=5),
                               description="wait after a failure, doubled per failure")
    quarantine_after: int = Field(3, ge=1, le=1000,
                                  description="consecutive failures before quarantine")


class MatchSpec(BaseModel):
    """Narrows the fix's own signatures (never widens them)."""

    model_config = ConfigDict(extra="forbid")

    statuses: list[Status] | None = None
    summary: str | None = None
    details: dict[str, str] = Field(default_factory=dict)

    @field_validator("statuses")
    @classmethod
    def _failing_only(cls, v: list[Status] | None) -> list[Status] | None:
        if v is not None and not set(v) <= FAILING:
            raise ValueError("a fix handles WARN and CRIT only (UNKNOWN never triggers one)")
        return v

    @field_validator("summary")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            re.compile(v)
        return v

    @field_validator("details")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for pattern in v.values():
            re.compile(pattern)
        return v

    def narrow(self, sig: Signature) -> Signature:
        statuses = sig.statuses & frozenset(self.statuses) if self.statuses else sig.statuses
        return Signature(sig.check, statuses, sig.summary, dict(sig.details))

    def accepts(self, result: Any) -> bool:
        from upkeeper.remediation.fix import patterns_match

        return patterns_match(self.summary, self.details, result)


class FixSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    fix: str = Field(description="registered fix name")
    for_check: str | None = Field(None, alias="for",
                                  description="check name or label (in `fixes:` only)")
    tier: str | None = Field(None, description="auto | approve | never")
    params: dict[str, Any] = Field(default_factory=dict)
    match: MatchSpec = Field(default_factory=lambda: MatchSpec())
    budget: BudgetSpec = Field(default_factory=lambda: BudgetSpec.model_validate({}))
    safe_anytime: bool = Field(False, description="may run outside maintenance windows")
    settle: Duration | None = None
    approval_ttl: Duration = Field(timedelta(hours=24))

    @field_validator("tier")
    @classmethod
    def _tier(cls, v: str | None) -> str | None:
        if v is not None and v not in TIERS:
            raise ValueError(f"tier is one of {', '.join(TIERS)}")
        return v


@dataclass
class Binding:
    """One fix attached to one check of the playbook."""

    index: int
    spec: FixSpec
    cls: type[Fix[Any]]
    params: BaseModel

    @property
    def tier(self) -> str:
        return self.spec.tier or self.cls.default_tier

    def handles(self, result: Any) -> bool:
        if result.status not in FAILING:
            return False
        return any(self.spec.match.narrow(sig).matches(result) and
                   self.spec.match.accepts(result) for sig in self.cls.handles)


def _entries(pb: Playbook) -> list[tuple[tuple[Any, ...], Any, int | None, bool]]:
    """(key path, raw spec, check index when attached by `fix:`, given as a bare name)."""
    out: list[tuple[tuple[Any, ...], Any, int | None, bool]] = []
    for i, check in enumerate(pb.checks):
        raw = check.fix
        items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        for n, item in enumerate(items):
            path = ("checks", i, "fix", n) if isinstance(raw, list) else ("checks", i, "fix")
            bare = isinstance(item, str)
            out.append((path, {"fix": item} if bare else item, i, bare))
    for n, item in enumerate(pb.fixes or []):
        out.append((("fixes", n), item, None, False))
    return out


def _check_index(pb: Playbook, name: str) -> list[int]:
    return [i for i, c in enumerate(pb.checks) if name in (c.label, c.check)]


def _resolve(pb: Playbook, registry: FixRegistry
             ) -> tuple[list[Binding], list[PlaybookError]]:
    found: list[Binding] = []
    problems: list[PlaybookError] = []
    if pb.fixes is not None and not isinstance(pb.fixes, list):
        return [], [pb.error(("fixes",), "fixes: is a list of fixes")]
    for path, raw, index, bare in _entries(pb):
        if not isinstance(raw, Mapping):
            problems.append(pb.error(path, "a fix is a name or a mapping with 'fix:'"))
            continue
        try:
            spec = FixSpec.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                what = (f"unknown key '{loc[-1]}'{did_you_mean(loc[-1], FixSpec.model_fields)}"
                        " (auditing cannot be turned off)" if err["type"] == "extra_forbidden"
                        else f"{'.'.join(map(str, loc)) or 'fix'}: {err['msg']}")
                problems.append(pb.error((*path, *loc), f"fix: {what}"))
            continue
        cls = registry.get(spec.fix)
        if cls is None:
            problems.append(pb.error(path if bare else (*path, "fix"),
                f"unknown fix '{spec.fix}'{did_you_mean(spec.fix, registry.names())}"
                f" (known: {', '.join(registry.names()) or 'none'})"))
            continue
        if index is None:
            if not spec.for_check:
                problems.append(pb.error(path, f"fix {spec.fix}: 'for:' names the check it"
                                               " fixes"))
                continue
            targets = _check_index(pb, spec.for_check)
            if not targets:
                problems.append(pb.error((*path, "for"), f"fix {spec.fix}: no check "
                                         f"'{spec.for_check}' in this playbook"))
                continue
        else:
            targets = [index]
        try:
            params = cls.Params.model_validate(spec.params)
        except ValidationError as exc:
            err = exc.errors()[0]
            problems.append(pb.error((*path, "params"), f"fix {spec.fix}: param "
                                     f"'{'.'.join(map(str, err['loc'])) or 'params'}': "
                                     f"{err['msg']}"))
            continue
        for i in targets:
            checked = pb.checks[i].check
            if not any(sig.check == checked for sig in cls.handles):
                problems.append(pb.error(path, f"fix {spec.fix} does not handle "
                                         f"{checked} (it handles "
                                         f"{', '.join(s.check for s in cls.handles)})"))
                continue
            found.append(Binding(i, spec, cls, params))
    return found, problems


def fix_problems(pb: Playbook, registry: FixRegistry) -> list[str]:
    """Every problem with the playbook's fixes, each ``file:line:column: message``."""
    return [str(p) for p in _resolve(pb, registry)[1]]


def bindings(pb: Playbook, registry: FixRegistry) -> list[Binding]:
    """The playbook's fixes, resolved.

    :raises PlaybookError: the first problem, with every one in ``problems``."""
    found, problems = _resolve(pb, registry)
    if problems:
        raise PlaybookError.of(problems)
    return found
