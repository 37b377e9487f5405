"""What every ``upkeeper`` command shares: per-invocation state, the invalid-input error
(exit 3) and loading playbooks and inventories with one-line errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from upkeeper.store.history import (
    History,
    HistoryDamaged,
    HistoryError,
    HistoryUnwritable,
    default_state_dir,
)

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.plugins import PluginSystem

EXIT_INVALID = 3
log = logging.getLogger("upkeeper")


class Invalid(click.ClickException):
    """Bad input: a one-line error on stderr and exit code 3 (UNKNOWN)."""

    exit_code = EXIT_INVALID

    def show(self, file: Any = None) -> None:
        click.echo(f"upkeeper: error: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise Invalid(message)


class AppState:
    """Per-invocation objects, built on first use."""

    def __init__(self, state_dir: str | None, disabled: tuple[str, ...]) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.disabled = disabled
        self._plugins: PluginSystem | None = None

    @property
    def plugins(self) -> PluginSystem:
        if self._plugins is None:
            from upkeeper.plugins import get_plugin_manager

            self._plugins = get_plugin_manager(disabled=self.disabled)
            for info in self._plugins.plugins:
                for err in info.errors:
                    log.warning("plugin %s: %s", info.name, err)
        return self._plugins

    def history(self) -> History:
        try:
            return History(self.state_dir / "history.sqlite3")
        except (HistoryUnwritable, HistoryDamaged) as exc:
            # The run still runs and prints; its verdict says it was not stored (exit 3).
            return History.unstorable(self.state_dir / "history.sqlite3", exc)
        except HistoryError as exc:
            fail(str(exc))


def load_inventory_sources(sources: tuple[str, ...], plugins: PluginSystem) -> Any:
    from upkeeper.inventory.loader import load_inventory, local_inventory
    from upkeeper.yamlsource import SourceError

    if not sources:
        return local_inventory()
    try:
        inv = load_inventory(list(sources), extra_sources=plugins.registry.inventory_sources)
    except SourceError as exc:
        fail(str(exc))
    for warning in inv.warnings:
        log.warning("inventory: %s", warning)
    return inv


def pattern_hints(inv: Any, pattern: str | None) -> list[str]:
    """The parts of ``pattern`` that match nothing, each with the closest host or group."""
    from upkeeper.engine.playbook import did_you_mean

    if not pattern:
        return []
    known = [*inv.groups, *inv.hosts]
    return [f"pattern {pattern!r}: nothing matches {name!r}"
            f"{did_you_mean(name.lstrip('&!'), known)}" for name in inv.unmatched(pattern)]


def select_or_fail(inv: Any, pattern: str, limit: str | None, *,
                   required: bool = True) -> list[Any]:
    """Hosts for a playbook pattern and ``--limit``; a bad pattern is invalid input, one
    that matches nothing is a warning (as in Ansible) and, with no hosts left and
    ``required``, an error."""
    from upkeeper.engine.runner import select_hosts
    from upkeeper.yamlsource import SourceError

    try:
        hosts = select_hosts(inv, pattern, limit)
        hints = [*pattern_hints(inv, pattern), *pattern_hints(inv, limit)]
    except SourceError as exc:
        fail(str(exc))
    if not hosts and required:
        fail(f"no hosts match '{pattern}'" + (f" limited to '{limit}'" if limit else "")
             + "".join(f"; {h}" for h in hints))
    for hint in hints:
        log.warning("%s", hint)
    return hosts


def load_checked_playbook(path: str, plugins: PluginSystem, *,
                          strict: bool = False) -> Playbook:
    from upkeeper.engine.playbook import load_playbook
    from upkeeper.yamlsource import SourceError

    if not Path(path).exists():
        fail(f"playbook {path}: no such file")
    try:
        return load_playbook(path, plugins.registry, strict=strict)
    except SourceError as exc:
        fail(str(exc))


def validate_extras(pb: Playbook, plugins: PluginSystem) -> list[str]:
    """Problems in the ``schedule``, ``notify``, ``report`` and fix sections."""
    from upkeeper.after_run.validate import validate_notify, validate_report
    from upkeeper.remediation.wiring import playbook_fix_problems

    problems = []
    if pb.schedule is not None:  # the schedule module is imported for playbooks with one
        from upkeeper.schedule.specs import validate_schedule

        problems += validate_schedule(pb)
    return [*problems, *validate_notify(pb, plugins.registry), *validate_report(pb),
            *playbook_fix_problems(pb, plugins)]
