"""Commands plugins add to ``upkeeper`` through ``upkeeper_register_commands``.

Collected only when a command that is not upkeeper's own is asked for (or ``--help``
lists them), so ``upkeeper run`` never pays for a plugin's command-line imports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import click

from upkeeper.plugins import PluginSystem


def plugin_commands(plugins: PluginSystem, reserved: Iterable[str]) -> dict[str, click.Command]:
    """Name -> command for every valid registration; refusals are logged and recorded on
    the plugin (``upkeeper plugins`` shows them): not a click command, no name, a name
    upkeeper uses (``reserved``), or one an earlier plugin registered."""
    taken = set(reserved)
    out: dict[str, click.Command] = {}
    origin: dict[str, str] = {}
    order = {p.name: (p.source != "built-in", n) for n, p in enumerate(plugins.plugins)}
    calls = plugins.call("upkeeper_register_commands")
    # Built-ins first, then in registration order: the first to claim a name keeps it.
    calls.sort(key=lambda pv: order.get(pv[0], (True, len(order))))
    for pname, values in calls:
        for cmd in values or []:
            problem = None
            if not isinstance(cmd, click.Command) or not cmd.name:
                problem = f"registered {cmd!r}, which is not a named click command"
            elif cmd.name in taken:
                problem = f"command '{cmd.name}' is one of upkeeper's own: not added"
            elif cmd.name in out:
                problem = (f"command '{cmd.name}' is registered twice: by plugin "
                           f"'{origin[cmd.name]}' and by plugin '{pname}'")
            if problem is not None:
                plugins.report_problem(pname, problem, logging.WARNING)
                continue
            assert cmd.name is not None
            out[cmd.name] = cmd
            origin[cmd.name] = pname
    return out


def cached_commands(ctx: click.Context, reserved: Iterable[str],
                    plugins: Callable[[], PluginSystem]) -> dict[str, click.Command]:
    """:func:`plugin_commands`, collected once per invocation (kept in ``ctx.meta``)."""
    found = ctx.meta.get("upkeeper.plugin_commands")
    if found is None:
        found = ctx.meta["upkeeper.plugin_commands"] = plugin_commands(plugins(), reserved)
    return dict(found)
