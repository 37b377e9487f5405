"""Before a run: which hosts, the variables each check sees, undefined variables, and
the actions that would change hosts with no maintenance windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from upkeeper.engine.playbook import Playbook
from upkeeper.engine.templating import TemplateError, evaluate, render_host_vars, render_value
from upkeeper.models import Host
from upkeeper.plugins import Registry, UnknownNameError


def select_hosts(inventory: Any, pattern: str, limit: str | None) -> list[Host]:
    """Hosts matching the playbook's pattern, narrowed by ``--limit``, inventory order."""
    hosts: list[Host] = list(inventory.select(pattern))
    if limit:
        allowed = {h.name for h in inventory.select(limit)}
        hosts = [h for h in hosts if h.name in allowed]
    return hosts


def template_context(pb: Playbook, host: Host) -> dict[str, Any]:
    """Variables visible to params and ``when:`` on one host."""
    return {
        **pb.vars,
        **host.vars,
        "facts": host.facts,
        "ansible_facts": host.facts,
        "inventory_hostname": host.name,
        "group_names": [g for g in host.groups if g not in ("all", "ungrouped")],
    }


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


class _FactsPlaceholder(dict[str, Any]):
    """Stands in for facts before they are gathered: any fact renders as ''."""

    def __missing__(self, key: str) -> str:
        return ""

    def __getattr__(self, key: str) -> str:
        return ""


def preflight(playbook: Playbook, hosts: Sequence[Host]) -> list[str]:
    """Undefined variables in params or ``when:``, per host, found before anything runs.

    Host vars are rendered (``{{ env.X }}`` missing is reported too); facts are not
    gathered here, so expressions on facts are not checked.
    """
    problems: list[str] = []
    for host in hosts:
        try:
            hostvars = render_host_vars(host.vars, playbook.vars)
        except TemplateError as exc:
            problems.append(f"host {host.name}: inventory: {exc}")
            continue
        probe = Host(name=host.name, vars=hostvars, groups=list(host.groups),
                     facts=_FactsPlaceholder())
        context = template_context(playbook, probe)
        for i, spec in enumerate(playbook.checks):
            items: list[tuple[tuple[str | int, ...], Any]] = [
                (("checks", i, "params", k), v) for k, v in spec.params.items()]
            if spec.when is not None:
                items.insert(0, (("checks", i, "when"), None))
            for key_path, value in items:
                try:
                    if value is None and key_path[-1] == "when":
                        evaluate(spec.when or "", context)
                    else:
                        render_value(value, context)
                except TemplateError as exc:
                    if exc.variable is None:
                        continue  # depends on facts or values only known at run time
                    line = playbook.line_of(key_path)
                    hint = " (define it in host/group vars, or use '| default(...)')"
                    problems.append(f"{playbook.path}:{line}: {spec.check}: {exc} for host "
                                    f"{host.name}{hint}")
    return problems
