"""The ``upkeeper`` command line. Exit codes follow the monitoring-plugin convention."""

from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from upkeeper import __version__
from upkeeper.cli.output import RunDisplay, print_run, to_json
from upkeeper.cli.state import with_state_dir
from upkeeper.engine.playbook import Playbook, load_playbook
from upkeeper.plugins import PluginSystem, get_plugin_manager
from upkeeper.store.history import (
    STATE_DIR_ENV,
    History,
    HistoryDamaged,
    HistoryError,
    HistoryUnwritable,
    default_state_dir,
)
from upkeeper.yamlsource import SourceError

EXIT_INVALID = 3
log = logging.getLogger("upkeeper")


class Invalid(click.ClickException):
    """Bad input: a one-line error on stderr and exit code 3 (UNKNOWN)."""

    exit_code = EXIT_INVALID

    def show(self, file: Any = None) -> None:
        click.echo(f"upkeeper: error: {self.format_message()}", err=True)


class AppState:
    """Per-invocation objects, built on first use."""

    def __init__(self, state_dir: str | None, disabled: tuple[str, ...]) -> None:
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self.disabled = disabled
        self._plugins: PluginSystem | None = None

    @property
    def plugins(self) -> PluginSystem:
        if self._plugins is None:
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


def _table(*columns: str, **kw: Any) -> Any:
    from rich.table import Table

    return Table(*columns, **kw)


def _show(table: Any) -> None:
    from rich.console import Console

    Console().print(table)


def fail(message: str) -> NoReturn:
    raise Invalid(message)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("paramiko").setLevel(max(level, logging.CRITICAL if verbose < 2 else 0))


def _parse_disable(values: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for v in values:
        if not v.startswith("no:"):
            fail(f"-p takes no:NAME to disable a plugin, got {v!r}")
        out.append(v[3:])
    return tuple(out)


class LazyGroup(click.Group):
    """Commands from other modules are imported only when invoked (fast start-up)."""

    lazy: dict[str, tuple[str, str]] = {
        "serve": ("upkeeper.cli.serve", "serve"),
        "status": ("upkeeper.cli.status", "status"),
        "history": ("upkeeper.cli.history_cmd", "history"),
        "runs": ("upkeeper.cli.history_cmd", "runs"),
        "windows": ("upkeeper.cli.serve", "windows"),
        "report": ("upkeeper.cli.report", "report"),
        "plugin": ("upkeeper.cli.plugin", "plugin"),
        "hostkeys": ("upkeeper_ssh.cli", "hostkeys"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return with_state_dir(self._get_command(ctx, cmd_name))

    def _get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attr = self.lazy[cmd_name]
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            log.warning("command %s is unavailable: %s", cmd_name, exc)
            return None
        return cmd if isinstance(cmd, click.Command) else None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HistoryError as exc:  # e.g. a damaged database: one line, not a traceback
            fail(str(exc))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="upkeeper")
@click.option("--state-dir", envvar=STATE_DIR_ENV, type=click.Path(file_okay=False),
              help="Where history is kept (default: the platform's state dir).")
@click.option("-p", "plugin_opts", multiple=True, metavar="no:NAME",
              help="Disable a plugin for this invocation (like UPKEEPER_DISABLE_PLUGINS).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, state_dir: str | None, plugin_opts: tuple[str, ...],
         verbose: int) -> None:
    """upkeeper: proactive maintenance checks and actions for fleets of hosts."""
    _setup_logging(verbose)
    ctx.obj = AppState(state_dir, _parse_disable(plugin_opts))


def load_inventory_sources(sources: tuple[str, ...], plugins: PluginSystem) -> Any:
    from upkeeper.inventory.loader import InventoryError, load_inventory, local_inventory

    if not sources:
        return local_inventory()
    try:
        inv = load_inventory(list(sources), extra_sources=plugins.registry.inventory_sources)
    except (InventoryError, SourceError) as exc:
        fail(str(exc))
    for warning in inv.warnings:
        log.warning("inventory: %s", warning)
    return inv


def select_or_fail(inv: Any, pattern: str, limit: str | None) -> list[Any]:
    """Hosts for a playbook pattern and ``--limit``; a bad pattern is invalid input."""
    from upkeeper.engine.runner import select_hosts
    from upkeeper.inventory.loader import InventoryError

    try:
        hosts = select_hosts(inv, pattern, limit)
        for pat in (pattern, limit):
            for name in inv.unmatched(pat) if pat else []:
                log.warning("pattern %r: nothing matches %r", pat, name)
    except InventoryError as exc:
        fail(str(exc))
    return hosts


def load_checked_playbook(path: str, plugins: PluginSystem) -> Playbook:
    if not Path(path).exists():
        fail(f"playbook {path}: no such file")
    try:
        return load_playbook(path, plugins.registry)
    except SourceError as exc:
        fail(str(exc))


def _validate_extras(pb: Playbook, plugins: PluginSystem) -> list[str]:
    """Problems in the ``schedule``, ``notify`` and ``report`` sections."""
    from upkeeper.after_run.alerts import validate_notify
    from upkeeper.after_run.report import validate_report
    from upkeeper.schedule.specs import validate_schedule

    return [*validate_schedule(pb), *validate_notify(pb, registry=plugins.registry),
            *validate_report(pb)]


@main.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV",
              help="Inventory file or directory (repeatable). Default: this machine only.")
@click.option("-l", "--limit", metavar="PATTERN", help="Further limit hosts (a:b, a:&b, a:!b).")
@click.option("-C", "--check", "check_mode", is_flag=True,
              help="Check mode: actions report what they would change and change nothing.")
@click.option("-f", "--forks", type=click.IntRange(1, 1000), help="Hosts in parallel.")
@click.option("--force", is_flag=True,
              help="Run actions outside maintenance windows (logged and noted in results).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def run(app: AppState, playbook: str, inventories: tuple[str, ...], limit: str | None,
        check_mode: bool, forks: int | None, force: bool, fmt: str) -> None:
    """Run PLAYBOOK; exit 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN (worst result wins)."""
    from upkeeper.engine.runner import preflight, run_playbook

    plugins = app.plugins
    pb = load_checked_playbook(playbook, plugins)
    problems = _validate_extras(pb, plugins)
    if problems:
        fail(problems[0])
    inv = load_inventory_sources(inventories, plugins)
    hosts = select_or_fail(inv, pb.hosts, limit)
    if not hosts:
        fail(f"no hosts match '{pb.hosts}'" + (f" limited to '{limit}'" if limit else ""))
    problems = preflight(pb, hosts)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fail(problems[0] + more)
    history = app.history()
    with RunDisplay(len(hosts), len(pb.checks), quiet=fmt == "json") as display:
        record = run_playbook(pb, inv, plugins, history, limit=limit, check_mode=check_mode,
                              forks=forks, on_result=display.result, force=force)
    print_run(record, fmt)
    history.close()
    sys.exit(record.exit_code)


@main.command()
@click.argument("playbook", type=click.Path(dir_okay=False))
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV")
@click.option("-l", "--limit", metavar="PATTERN")
@click.pass_obj
def validate(app: AppState, playbook: str, inventories: tuple[str, ...],
             limit: str | None) -> None:
    """Check PLAYBOOK (and with -i, its variables on every host) without running it."""
    from upkeeper.engine.runner import preflight

    pb = load_checked_playbook(playbook, app.plugins)
    problems = _validate_extras(pb, app.plugins)
    inv = load_inventory_sources(inventories, app.plugins)
    hosts = select_or_fail(inv, pb.hosts, limit)
    problems += preflight(pb, hosts)
    if problems:
        for p in problems[1:]:
            click.echo(f"upkeeper: error: {p}", err=True)
        fail(problems[0])
    click.echo(f"{playbook}: OK ({len(pb.checks)} checks, {len(hosts)} hosts)")


@main.group()
def inventory() -> None:
    """Inspect inventories."""


@inventory.command("list")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV")
@click.option("-l", "--limit", metavar="PATTERN")
@click.option("--format", "fmt", type=click.Choice(["table", "ansible-json", "json"]),
              default="table")
@click.pass_obj
def inventory_list(app: AppState, inventories: tuple[str, ...], limit: str | None,
                   fmt: str) -> None:
    """List hosts; --format ansible-json prints what `ansible-inventory --list` prints."""
    from upkeeper.inventory.loader import InventoryError

    inv = load_inventory_sources(inventories, app.plugins)
    try:
        if fmt in ("ansible-json", "json"):
            click.echo(inv.to_ansible_json(limit))
            return
        hosts = inv.select(limit or "all")
    except InventoryError as exc:
        fail(str(exc))
    table = _table("Host", "Address", "Connection", "Groups")
    for h in hosts:
        groups = ", ".join(g for g in h.groups if g not in ("all", "ungrouped"))
        table.add_row(h.name, h.address, h.connection, groups)
    _show(table)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def plugins(app: AppState, fmt: str) -> None:
    """Loaded plugins, what they provide, and errors of those that were skipped."""
    infos = app.plugins.plugins
    if fmt == "json":
        click.echo(to_json([i.to_dict() for i in infos]))
        return
    table = _table("Plugin", "Version", "Source", "Provides", "Status")
    for i in infos:
        provides = ", ".join(i.checks + i.transports + i.notifiers)
        status = ("disabled" if i.disabled else "; ".join(i.errors) if i.errors
                  else "loaded")
        table.add_row(i.name, i.version, i.source, provides,
                      f"[red]{status}[/]" if i.errors else status)
    _show(table)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def checks(app: AppState, fmt: str) -> None:
    """Every registered check and action with its params."""
    reg = app.plugins.registry
    described = [reg.checks[n].describe() | {"plugin": reg.origin[("check", n)]}
                 for n in sorted(reg.checks)]
    if fmt == "json":
        click.echo(to_json(described))
        return
    table = _table("Check", "Kind", "Platforms", "Params", "Description")
    for d in described:
        props = d["params"].get("properties", {})
        required = set(d["params"].get("required", []))
        params = ", ".join(f"{k}{'*' if k in required else ''}" for k in props)
        table.add_row(d["name"], d["kind"], ",".join(d["platforms"]), params, d["description"])
    _show(table)


@main.command()
@click.argument("what", type=click.Choice(["playbook"]))
def schema(what: str) -> None:
    """JSON Schema for playbooks (for editors: yaml-language-server)."""
    doc = Playbook.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "upkeeper playbook"
    click.echo(to_json(doc))
