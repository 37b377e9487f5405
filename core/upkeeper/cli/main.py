"""The ``upkeeper`` command line. Exit codes follow the monitoring-plugin convention."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from upkeeper import __version__
from upkeeper.cli.common import (
    EXIT_INVALID,
    AppState,
    fail,
    load_checked_playbook,
    load_inventory_sources,
    log,
    select_or_fail,
    validate_extras,
)
from upkeeper.cli.output import RunDisplay, print_run, to_json
from upkeeper.cli.pydantic_policy import pydantic_plugins_off
from upkeeper.cli.state import with_state_dir
from upkeeper.store.history import STATE_DIR_ENV


def _setup_logging(verbose: int) -> None:
    from upkeeper.engine.secrets import install_log_masking

    level = logging.WARNING - 10 * min(verbose, 2)
    handler: logging.Handler
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        handler = RichHandler(console=Console(stderr=True), show_path=False)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    install_log_masking(handler)
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


#: Commands defined in other modules, imported only when invoked (fast start-up).
#: One line per command: ``name: (module, attribute)``.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("upkeeper.cli.serve", "serve"),
    "status": ("upkeeper.cli.status", "status"),
    "history": ("upkeeper.cli.history_cmd", "history"),
    "runs": ("upkeeper.cli.history_cmd", "runs"),
    "windows": ("upkeeper.cli.serve", "windows"),
    "report": ("upkeeper.cli.report", "report"),
    "state": ("upkeeper.cli.state_cmd", "state"),
    "plugin": ("upkeeper.cli.plugin", "plugin"),
    "validate": ("upkeeper.cli.validate", "validate"),
    "inventory": ("upkeeper.cli.info", "inventory"),
    "plugins": ("upkeeper.cli.info", "plugins"),
    "checks": ("upkeeper.cli.info", "checks"),
    "schema": ("upkeeper.cli.info", "schema"),
    "docs": ("upkeeper.cli.docs_cmd", "docs"),
    "web": ("upkeeper.cli.web_cmd", "web"),
    "fixes": ("upkeeper.cli.fixes_cmd", "fixes"),
    "audit": ("upkeeper.cli.fixes_cmd", "audit"),
    "worker": ("upkeeper.cli.worker", "worker"),
    "sites": ("upkeeper.cli.sites_cmd", "sites"),
    "hub": ("upkeeper.cli.hub_cmd", "hub"),
}
JSON_FORMATS = ("json", "ansible-json")


def json_requested(args: Sequence[str]) -> bool:
    """Whether the command line asks for JSON output (``--format json``)."""
    for i, arg in enumerate(args):
        if arg == "--":
            break
        value = None
        if arg == "--format" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--format="):
            value = arg.partition("=")[2]
        if value in JSON_FORMATS:
            return True
    return False


class InvalidInput(click.ClickException):
    """Any error of a command (click's usage errors too) as exit code 3 (UNKNOWN): one
    line on stderr, or with ``--format json`` an error document on stdout."""

    exit_code = EXIT_INVALID

    def __init__(self, cause: click.ClickException, as_json: bool) -> None:
        super().__init__(cause.format_message())
        self.cause, self.as_json = cause, as_json

    def show(self, file: Any = None) -> None:
        if self.as_json:
            click.echo(to_json({"error": self.message, "exit_code": self.exit_code},
                               pretty=False))
        elif isinstance(self.cause, click.UsageError):
            self.cause.show()
        else:
            click.echo(f"upkeeper: error: {self.message}", err=True)


class LazyGroup(click.Group):
    """The ``upkeeper`` group: lazily imported commands (:data:`LAZY_COMMANDS`), and one
    exit-code policy for every command, whoever wrote it: invalid input exits 3."""

    _raw_args: list[str] = []

    def main(self, args: Sequence[str] | None = None, *rest: Any, **kw: Any) -> Any:
        if args is None:  # the real command line, not a caller embedding the group
            pydantic_plugins_off()
        self._raw_args = list(sys.argv[1:] if args is None else args)
        return super().main(self._raw_args, *rest, **kw)

    def make_context(self, info_name: str | None, args: list[str],
                     parent: click.Context | None = None, **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as exc:
            raise self._invalid(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as exc:
            raise self._invalid(exc) from exc
        except Exception as exc:
            from upkeeper.store.history import HistoryError
            from upkeeper.yamlsource import SourceError

            if not isinstance(exc, (SourceError, HistoryError)):
                raise
            # A file error a command forgot to catch (or a damaged history database) is
            # still invalid input, not a crash.
            raise self._invalid(click.ClickException(str(exc))) from exc

    def _invalid(self, exc: click.ClickException) -> InvalidInput:
        if isinstance(exc, InvalidInput):
            return exc
        return InvalidInput(exc, json_requested(self._raw_args))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS, *self._from_plugins(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return with_state_dir(self._get_command(ctx, cmd_name))

    def _get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        if cmd_name not in LAZY_COMMANDS:  # plugins' commands are looked up only now
            return self._from_plugins(ctx).get(cmd_name)
        module, attr = LAZY_COMMANDS[cmd_name]
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            log.warning("command %s is unavailable: %s", cmd_name, exc)
            return None
        return cmd if isinstance(cmd, click.Command) else None

    def _from_plugins(self, ctx: click.Context) -> dict[str, click.Command]:
        from upkeeper.cli.plugin_commands import cached_commands

        return cached_commands(ctx, {*self.commands, *LAZY_COMMANDS}, lambda: _app(ctx).plugins)


def _app(ctx: click.Context) -> AppState:
    """The invocation's AppState; plugin commands are resolved before ``main`` runs, so
    the first to need it builds it from the options parsed so far."""
    if not isinstance(ctx.obj, AppState):
        ctx.obj = AppState(ctx.params.get("state_dir"),
                           _parse_disable(tuple(ctx.params.get("plugin_opts") or ())))
    return ctx.obj


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
    if not isinstance(ctx.obj, AppState):  # a plugin command may have built it already
        ctx.obj = AppState(state_dir, _parse_disable(plugin_opts))


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
@click.option("--now", is_flag=True,
              help="Let actions change hosts that have no maintenance_windows, now.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--hub", "hub_url", envvar="UPKEEPER_HUB", metavar="URL",
              help="NATS URL of the hub: hosts with a 'site' var run at their site's workers.")
@click.option("--hub-creds", envvar="UPKEEPER_HUB_CREDS", type=click.Path(dir_okay=False),
              help="NATS credentials file of the hub [default: STATE_DIR/sites/hub.creds"
              " when it exists].")
@click.option("--hub-wait", default="10m", show_default=True,
              help="How long site jobs may take; later ones are recorded expired, not run.")
@click.pass_obj
def run(app: AppState, playbook: str, inventories: tuple[str, ...], limit: str | None,
        check_mode: bool, forks: int | None, force: bool, now: bool, fmt: str,
        hub_url: str | None, hub_creds: str | None, hub_wait: str) -> None:
    """Run PLAYBOOK; exit 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN (worst result wins)."""
    from upkeeper.after_run.context import RunContext
    from upkeeper.after_run.pipeline import after_run
    from upkeeper.after_run.validate import notify_preflight
    from upkeeper.engine.preflight import action_plan
    from upkeeper.engine.runner import run_playbook
    from upkeeper.engine.variables import check_templates
    from upkeeper.remediation.wiring import has_fixes

    plugins = app.plugins
    pb = load_checked_playbook(playbook, plugins)
    problems = validate_extras(pb, plugins)
    if problems:
        fail(problems[0])
    inv = load_inventory_sources(inventories, plugins)
    hosts = select_or_fail(inv, pb.hosts, limit)
    # Only the playbook's own problems stop the run: a var one host lacks (one client's
    # missing secret, one client's notify_email) makes that host's affected checks UNKNOWN
    # or its alerts a recorded failed delivery; every other host runs.
    problems = check_templates(pb, hosts)[0]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        fail(problems[0] + more)
    for problem in notify_preflight(pb, hosts, plugins.registry):
        log.warning("%s", problem)
    plan = action_plan(pb, hosts, plugins.registry, check_mode=check_mode, allow_anytime=now)
    if plan and sys.stdin.isatty() and sys.stdout.isatty():
        click.echo("These actions would change hosts that have no maintenance_windows:", err=True)
        for host, action in plan:
            click.echo(f"  {host}: {action}", err=True)
        fail("nothing was run; try --check first, then run again with --now (or set "
             "allow_anytime: true in the playbook, or give the hosts maintenance_windows)")
    history = app.history()
    fix_pass = None
    if has_fixes(pb):
        from upkeeper.remediation.engine import default_actor
        from upkeeper.remediation.wiring import fix_pass_for

        fix_pass = fix_pass_for(pb, plugins, history, actor=default_actor("run"))
    from upkeeper.cli.hub import open_hub

    hub, remote = open_hub(hub_url, hub_creds, hub_wait, history, app.state_dir)
    try:
        with RunDisplay(len(hosts), len(pb.checks), quiet=fmt == "json") as display:
            record = run_playbook(pb, inv, plugins, history, limit=limit,
                                  check_mode=check_mode, forks=forks,
                                  on_result=display.result, force=force,
                                  allow_anytime=now, remote=remote,
                                  host_finished=fix_pass)
    finally:
        if hub is not None:
            hub.close()
    print_run(record, fmt)
    after_run(record, RunContext.for_run(record, pb, history, plugins, inventory=inv))
    history.close()
    sys.exit(record.exit_code)
