"""``upkeeper report --client X --month YYYY-MM`` (or ``--since/--until``): the period
client report from every result in the period (see :mod:`upkeeper.monthly`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import click

from upkeeper.after_run.asbuilt_step import ingest_facts
from upkeeper.monthly.docs import report_sources
from upkeeper.monthly.period import (
    Period,
    PeriodError,
    client_timezone,
    month_period,
    range_period,
)
from upkeeper.monthly.render import render_client_report
from upkeeper.monthly.report import MonthlyReportError, build_client_report
from upkeeper.store.history import History


def _host_vars(ctx: click.Context, inventories: tuple[str, ...]
               ) -> dict[str, Mapping[str, Any]] | None:
    if not inventories:
        return None
    from upkeeper.cli.common import load_inventory_sources
    from upkeeper.plugins import get_plugin_manager

    plugins = getattr(ctx.obj, "plugins", None) or get_plugin_manager()
    inv = load_inventory_sources(inventories, plugins)
    return {name: host.vars for name, host in inv.hosts.items()}


def _categories(ctx: click.Context) -> list[Any]:
    """Plugins' documentation categories (how their changes read), if plugins loaded."""
    from upkeeper.asbuilt.api import doc_categories

    return doc_categories(getattr(ctx.obj, "plugins", None))


def render_period_report(ctx: click.Context, history: History, *, client: str | None,
                         month: str | None, since: str | None, until: str | None,
                         zone: str | None, inventories: tuple[str, ...], fmt: str,
                         now: datetime | None = None) -> tuple[str, Period]:
    """The report text and its period; usage errors and missing data as ClickException."""
    if not client:
        raise click.UsageError("--month/--since need --client (a period report is of one"
                               " client)")
    if month and (since or until):
        raise click.UsageError("give --month or --since/--until, not both")
    if until and not since:
        raise click.UsageError("--until needs --since")
    host_vars = _host_vars(ctx, inventories)
    if zone is None:
        zone = client_timezone(hv for hv in (host_vars or {}).values()
                               if str(hv.get("client", "")) == client)
    now = now or datetime.now(timezone.utc)
    try:
        period = (month_period(month, zone) if month else
                  range_period(since or "", until, zone, today=now.date()))
        ingest_facts(history)  # facts of runs without an after-run step (a hub's, an old run)
        sources = report_sources(history, client, _categories(ctx))
        report = build_client_report(history, client, period, host_vars=host_vars, now=now,
                                     fixes=sources.fixes, docs=sources.docs)
    except (PeriodError, MonthlyReportError) as exc:
        raise click.ClickException(str(exc)) from None
    return render_client_report(report, fmt), period
