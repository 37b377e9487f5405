"""Before a run: which hosts, the variables each check sees, undefined variables, and
the actions that would change hosts with no maintenance windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from upkeeper.engine.playbook import Playbook
from upkeeper.engine.variables import check_templates, scope_of
from upkeeper.models import Host
from upkeeper.plugins import Registry, UnknownNameError


def select_hosts(inventory: Any, pattern: str, limit: str | None) -> list[Host]:
    """Hosts matching the playbook's pattern, narrowed by ``--limit``, inventory order."""
    hosts: list[Host] = list(inventory.select(pattern))
    if limit:
        allowed = {h.name for h in inventory.select(limit)}
        hosts = [h for h in hosts if h.name in allowed]
    return hosts


def template_context(pb: Playbook, host: Host) -> Mapping[str, Any]:
    """Variables visible to params and ``when:`` on one host, rendered when used."""
    return scope_of(host, pb.vars)


def unwindowed_reason(check: str, host: str) -> str:
    """Why an action is not run on a host without maintenance windows, and how to allow it."""
    return (f"not run: {check} would change {host} now, and {host} has no "
            "maintenance_windows; give it maintenance_windows, or allow changes at any "
            "time with 'allow_anytime: true' in the playbook or --now")


def action_plan(pb: Playbook, hosts: Sequence[Host], registry: Registry, *,
                check_mode: bool = False, allow_anytime: bool = False) -> list[tuple[str, str]]:
    """``(host, check label)`` of every action that is held back because its host has no
    ``maintenance_windows`` (empty in check mode or when changes are allowed any time).
    ``when:`` is not evaluated: the plan says what could run."""
    if check_mode or allow_anytime or pb.allow_anytime:
        return []
    actions = []
    for spec in pb.checks:
        try:
            cls = registry.check(spec.check)
        except UnknownNameError:
            continue
        if cls.is_action and getattr(cls, "needs_window", True):
            actions.append(spec)
    return [(h.name, f"{s.label} ({s.check})" if s.name else s.check)
            for h in hosts if not h.vars.get("maintenance_windows") for s in actions]


def preflight(playbook: Playbook, hosts: Sequence[Host]) -> list[str]:
    """Undefined variables in params or ``when:``, per host, found before anything runs
    (all of them; :func:`upkeeper.engine.variables.check_templates` tells the
    playbook's own problems from those of some hosts)."""
    everywhere, some = check_templates(playbook, hosts)
    return everywhere + some
