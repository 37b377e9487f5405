"""Wiring a run to its fixes: the fix pass for a playbook (None when it has none)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.plugins import PluginSystem
    from upkeeper.remediation.audit import _HistoryLike
    from upkeeper.remediation.engine import FixPass

__all__ = ["fix_pass_for", "has_fixes", "playbook_fix_problems"]


def has_fixes(pb: Playbook) -> bool:
    """Whether the playbook attaches any fix (the rest of remediation is imported only
    then)."""
    return bool(pb.fixes) or any(c.fix for c in pb.checks)


def playbook_fix_problems(pb: Playbook, plugins: PluginSystem) -> list[str]:
    """``file:line: message`` for each problem with the playbook's fixes."""
    if not has_fixes(pb):
        return []
    from upkeeper.remediation.registry import FixRegistry
    from upkeeper.remediation.spec import fix_problems

    return fix_problems(pb, FixRegistry.from_plugins(plugins))


def fix_pass_for(pb: Playbook, plugins: PluginSystem, db: _HistoryLike, *, actor: str,
                 client_cap: int | None = None, global_cap: int | None = None,
                 clock: Callable[[], datetime] | None = None) -> FixPass | None:
    """The runner's ``host_finished`` seam for ``pb``, or None when it has no fixes
    (caps default to the budget module's; it is imported only for a playbook with fixes).

    :raises PlaybookError: a fix is unknown, misconfigured or attached to a check it
        does not handle (file:line)."""
    if not has_fixes(pb):
        return None
    from upkeeper.remediation.budget import DEFAULT_CLIENT_CAP, DEFAULT_GLOBAL_CAP
    from upkeeper.remediation.engine import FixPass
    from upkeeper.remediation.registry import FixRegistry
    from upkeeper.remediation.spec import bindings

    found = bindings(pb, FixRegistry.from_plugins(plugins))
    return FixPass(db, found, actor=actor,
                   client_cap=DEFAULT_CLIENT_CAP if client_cap is None else client_cap,
                   global_cap=DEFAULT_GLOBAL_CAP if global_cap is None else global_cap,
                   clock=clock)
