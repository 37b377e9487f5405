"""``upkeeper report``: render a stored run as an HTML or Markdown report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from upkeeper.after_run.asbuilt_step import docs_source
from upkeeper.after_run.report import FORMATS, ReportError, render_report
from upkeeper.store.history import DB_NAME, History, HistoryError, default_state_dir

if TYPE_CHECKING:
    from upkeeper.plugins import PluginSystem
    from upkeeper.registry import Registry


def _plugins(ctx: click.Context) -> PluginSystem:
    """The plugins (the upkeeper group's, if any): template dirs, report sections, and
    the categories of the ``docs`` section."""
    plugins: PluginSystem | None = getattr(ctx.obj, "plugins", None)
    if plugins is None:
        from upkeeper.plugins import get_plugin_manager

        plugins = get_plugin_manager()
    return plugins


def _state_dir(ctx: click.Context, given: str | None) -> Path:
    if given:
        return Path(given)
    app_dir = getattr(ctx.obj, "state_dir", None)
    return Path(app_dir) if app_dir else default_state_dir()


@click.command()
@click.option("--run", "run_id", metavar="ID", help="The run to report on.")
@click.option("--last", is_flag=True, help="The most recent run (the default).")
@click.option("--playbook", metavar="NAME", help="With --last: the last run of this playbook.")
@click.option("--client", metavar="NAME", help="Only hosts of this client (host var 'client').")
@click.option("-t", "--template", default="client", show_default=True,
              help="Template name: client, summary, or one in --template-dir.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="File to write ('-' for stdout).")
@click.option("--template-dir", type=click.Path(file_okay=False, exists=True),
              help="Directory searched for templates before plugins' and built-ins.")
@click.option("--state-dir", "state_dir", type=click.Path(file_okay=False),
              help="Where the history database is (default: the global --state-dir).")
@click.option("--trend-days", default=30, show_default=True, type=click.IntRange(1, 3660),
              help="Days of history in sparklines.")
@click.option("--month", metavar="YYYY-MM",
              help="With --client: the monthly report of every result in that month.")
@click.option("--since", metavar="DATE", help="With --client: a period report from DATE.")
@click.option("--until", metavar="DATE", help="With --since: up to DATE (default today).")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="INV",
              help="Period report: the inventory, for maintenance windows and timezones.")
@click.option("--timezone", "zone", metavar="ZONE",
              help="Period report: month boundaries in this zone (default: the client's"
                   " hosts' 'timezone' var, else UTC).")
@click.pass_context
def report(ctx: click.Context, run_id: str | None, last: bool, playbook: str | None,
           client: str | None,
           template: str, fmt: str, output: str, template_dir: str | None,
           state_dir: str | None, trend_days: int, month: str | None, since: str | None,
           until: str | None, inventories: tuple[str, ...], zone: str | None) -> None:
    """Write a report of a run: per-client maintenance (patches, backups, disks, trends)
    or a run summary; with --month or --since, the client's report over that period."""
    if run_id and last:
        raise click.UsageError("give --run ID or --last, not both")
    period = bool(month or since or until)
    if period and (run_id or last):
        raise click.UsageError("--month/--since report a period, not one run (--run/--last)")
    db = _state_dir(ctx, state_dir) / DB_NAME
    if not db.exists():
        raise click.ClickException(f"no history at {db} (run a playbook first, or set "
                                   "--state-dir)")
    try:
        history = History(db)
    except HistoryError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        if period:
            from upkeeper.cli.period_report import render_period_report

            text, span = render_period_report(ctx, history, client=client, month=month,
                                              since=since, until=until, zone=zone,
                                              inventories=inventories, fmt=fmt)
            _write(output, text, f"report of {client} for {span.label} ({fmt})")
            return
        if run_id:
            rid: str | None = run_id
        elif client:  # the latest run with this client's hosts, not a rerun of another's
            from upkeeper.monthly.runs import latest_run_for_client

            rid = latest_run_for_client(history, client, playbook)
            if rid is None:
                raise click.ClickException(
                    f"no run{f' of playbook {playbook!r}' if playbook else ''} in history"
                    f" has results for client '{client}'")
        else:
            rid = history.last_run_id(playbook)
        run = history.get_run(rid) if rid else None
        if run is None:
            raise click.ClickException(
                f"run {run_id} not found" if run_id else
                f"no runs of playbook '{playbook}' in history" if playbook else
                "no runs in history yet")
        plugins = _plugins(ctx)
        registry: Registry = plugins.registry
        try:
            text = render_report(run, history, template=template, fmt=fmt, client=client,
                                 template_dir=template_dir, plugin_dirs=registry.template_dirs,
                                 trend_days=trend_days, sections=registry.report_sections,
                                 docs=docs_source(history, plugins))
        except ReportError as exc:
            raise click.ClickException(str(exc)) from None
    finally:
        history.close()
    _write(output, text, f"{template} report of run {run.run_id} ({fmt})")


def _write(output: str, text: str, what: str) -> None:
    if output == "-":
        click.echo(text, nl=False)
        return
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    click.echo(f"{out}: {what}", err=True)
