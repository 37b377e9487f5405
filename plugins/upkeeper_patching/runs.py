"""Patch runs in a package manager's history, and the last time a host was patched.

"Days since patch" means days since the pending security updates were last brought to
zero. Two sources say when that was:

- the package manager's own history, where a *patch run* (``apt upgrade``,
  unattended-upgrades, ``dnf upgrade --security``, ``zypper patch``, Windows installing
  security updates) is told apart from installing one package, which may pull upgraded
  dependencies but leaves the pending security updates where they were;
- what ``patching.status`` saw itself: the first run that found no security updates
  pending after one that found some (kept per host in the check's history state).

The newer of the two wins.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: Key of the per-host state ``patching.status`` keeps about the pending security count.
CLEARED_STATE = "security_cleared"


@dataclass(frozen=True)
class PatchRun:
    """One run in a package manager's history that brought in every pending update
    (or every pending security update)."""

    when: datetime
    kind: str  # e.g. "apt-get upgrade", "unattended-upgrade", "dnf upgrade --security"


def newest(runs: Iterable[PatchRun | None]) -> PatchRun | None:
    """The most recent of ``runs`` (``None`` entries ignored)."""
    known = [r for r in runs if r is not None]
    return max(known, key=lambda r: r.when) if known else None


def program(token: str) -> str:
    """``/usr/bin/apt-get`` -> ``apt-get``; quotes as zypper's history writes them dropped."""
    return os.path.basename(token.strip("'\""))


def operands(args: Sequence[str], value_options: frozenset[str]) -> list[str]:
    """The positional words of ``args``: options and the values of ``value_options``
    (``-o X``, ``--exclude X``; the ``--opt=X`` form needs no list) are skipped."""
    out: list[str] = []
    skip = False
    for raw in args:
        arg = raw.strip("'\"")
        if skip:
            skip = False
            continue
        if arg == "--":
            continue
        if arg.startswith("-") and len(arg) > 1:
            skip = "=" not in arg and arg in value_options
            continue
        out.append(arg)
    return out


def option_values(args: Sequence[str], names: Iterable[str]) -> list[str]:
    """Values given to any of ``names`` (``--opt X`` and ``--opt=X``)."""
    wanted = set(names)
    values: list[str] = []
    cleaned = [a.strip("'\"") for a in args]
    for i, arg in enumerate(cleaned):
        name, eq, value = arg.partition("=")
        if name in wanted:
            if eq:
                values.append(value)
            elif i + 1 < len(cleaned):
                values.append(cleaned[i + 1])
    return values


@dataclass
class LastPatched:
    """When the host was last patched, and how that is known."""

    when: datetime | None
    source: str  # "history", "observed" or "unknown"
    run: PatchRun | None
    cleared: datetime | None


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def track_cleared(previous: Any, security_clear: bool | None, all_clear: bool,
                  run: PatchRun | None, now: datetime) -> dict[str, Any]:
    """The new state after a run that saw (or not) zero pending security updates, and zero
    pending updates at all (a full upgrade, which counts as patched too).

    ``previous`` is the stored state (``{"security": bool, "all": bool, "at": iso}``) or
    None on the first run; ``security_clear`` is None when the security status of pending
    updates is unknown. ``at`` is when a count was last brought to zero: the first run
    that saw it at zero after one that saw more. On the very first run nothing was seen
    before, so a zero is credited to the last patch run in the history when there is one.
    """
    prev = previous if isinstance(previous, dict) else None
    at = _parse_iso(prev.get("at")) if prev else None
    if prev is None:
        if security_clear or all_clear:
            at = run.when if run is not None else now
    elif (security_clear and not prev.get("security")) or (all_clear and not prev.get("all")):
        at = now
    return {"security": bool(security_clear), "all": all_clear,
            "at": at.isoformat() if at else None}


def last_patched(run: PatchRun | None, state: dict[str, Any]) -> LastPatched:
    """Combine the history's newest patch run with the observed clearing time."""
    cleared = _parse_iso(state.get("at"))
    if run is not None and (cleared is None or run.when >= cleared):
        return LastPatched(run.when, "history", run, cleared)
    if cleared is not None:
        return LastPatched(cleared, "observed", run, cleared)
    return LastPatched(None, "unknown", run, cleared)
