"""``upkeeper history`` (results with their run ids; ``prune``, ``check``) and
``upkeeper runs``: reading and keeping the history database from the command line.

On a terminal results are a table; off it, a header line and one tab-separated row per
line (for scripts);
``--format json`` everywhere. A filter that matches nothing is an error (exit 3) that
lists what is there.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from upkeeper.cli.output import print_table, to_json
from upkeeper.cli.state import die, duration, open_history, resolve_state_dir
from upkeeper.store.errors import RECOVERY_DOC, HistoryError, HistoryMissing
from upkeeper.store.history import DB_NAME, History
from upkeeper.store.runs import (
    NotFound,
    client_hosts,
    find_results,
    list_runs,
    playbook_names,
    require_run,
)

FORMATS = click.Choice(["table", "json"])


def _short(ts: str | None) -> str:
    return ts[:19].replace("T", " ") + "Z" if ts else "-"


def _filters(db: History, run_id: str | None, playbook: str | None,
             client: str | None) -> tuple[list[str] | None, list[str] | None]:
    try:
        if run_id:
            require_run(db, run_id)
        names = playbook_names(db, playbook) if playbook else None
        hosts = client_hosts(db, client) if client else None
    except NotFound as exc:
        die(str(exc))
    return names, hosts


def _filter_options(fn: Any) -> Any:
    fn = click.option("--client", help="Only hosts of this client.")(fn)
    fn = click.option("--playbook", help="Only runs of this playbook (name or file).")(fn)
    return fn


@click.group(invoke_without_command=True)
@click.option("--host", help="Only this host.")
@click.option("--check", "check_name", help="Only this check.")
@click.option("--metric", help="Show this metric's series instead of results.")
@click.option("--run", "run_id", help="Only this run (ids: 'upkeeper runs').")
@_filter_options
@click.option("-n", "--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def history(ctx: click.Context, host: str | None, check_name: str | None,
            metric: str | None, run_id: str | None, playbook: str | None,
            client: str | None, limit: int, fmt: str) -> None:
    """Past results with their run ids, newest first, or a metric's series (--metric,
    needs --host). Subcommands keep the database: prune, check."""
    if ctx.invoked_subcommand is not None:
        return
    if metric and not host:
        die("--metric needs --host")
    db = open_history(resolve_state_dir(ctx))
    if metric and host:
        series = db.series(host, metric, check=check_name)[-limit:]
        if not series:
            known = db.metric_names(host)
            die(f"no values of metric {metric!r} for host {host!r}; its metrics:"
                f" {', '.join(known[:30]) or 'none'}")
        if fmt == "json":
            click.echo(to_json([{"ts": t.isoformat(), "value": v} for t, v in series]))
            return
        print_table(("Time", metric), [(t.isoformat(timespec="seconds"), f"{v:g}")
                                 for t, v in series])
        return
    names, hosts = _filters(db, run_id, playbook, client)
    results = find_results(db, host=host, check=check_name, run_id=run_id, playbooks=names,
                           hosts=hosts, limit=limit)
    if fmt == "json":
        click.echo(to_json(results))
        return
    print_table(("Time", "Status", "Host", "Check", "Run", "Summary"),
          [(_short(r["time"]), r["status"], r["host"], r["name"], r["run_id"], r["summary"])
           for r in results])


@click.command()
@_filter_options
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(1))
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def runs(ctx: click.Context, playbook: str | None, client: str | None, limit: int,
         fmt: str) -> None:
    """Recorded runs, newest first: id, playbook, start, status, result counts, hosts."""
    db = open_history(resolve_state_dir(ctx))
    names, hosts = _filters(db, None, playbook, client)
    found = list_runs(db, limit=limit, playbooks=names, hosts=hosts)
    if fmt == "json":
        click.echo(to_json(found))
        return
    rows = []
    for r in found:
        counts = " ".join(f"{k}={v}" for k, v in sorted(r["counts"].items())) or "-"
        status = r["status"] + (" (interrupted)" if r["interrupted"] else "")
        rows.append((r["run_id"], r["playbook"], _short(r["started"]), status, counts,
                     str(r["hosts"])))
    print_table(("Run", "Playbook", "Started", "Status", "Results", "Hosts"), rows)


@history.command()
@click.option("--older-than", required=True, metavar="AGE",
              help="Delete what is older than this, e.g. 400d.")
@click.option("--dry-run", is_flag=True, help="Only count what would be deleted.")
@click.option("--no-vacuum", is_flag=True, help="Do not give the freed space back.")
@click.pass_context
def prune(ctx: click.Context, older_than: str, dry_run: bool, no_vacuum: bool) -> None:
    """Delete results, metrics, slot records and emptied runs older than AGE, then give
    the space back to the file system."""
    from upkeeper.store.retention import count_older
    from upkeeper.store.retention import prune as prune_history

    age = duration(older_than, "--older-than")
    if age <= 0:
        raise click.BadParameter("must be more than 0", param_hint="--older-than")
    db = open_history(resolve_state_dir(ctx))
    before = datetime.now(timezone.utc) - timedelta(seconds=age)
    try:
        rep = (count_older(db, before) if dry_run
               else prune_history(db, before, reclaim=not no_vacuum))
    except HistoryError as exc:
        die(str(exc))
    prefix = "would have " if dry_run else ""
    click.echo(f"history {db.path}: {prefix}{rep.summary()}")
    for problem in rep.problems:
        click.echo(f"upkeeper: warning: {problem}", err=True)


@history.command("check")
@click.option("--full", is_flag=True, help="integrity_check (slower) instead of quick_check.")
@click.pass_context
def check_cmd(ctx: click.Context, full: bool) -> None:
    """Check the database file; exit 0 sound, 2 damaged, 3 missing or unreadable."""
    from upkeeper.store.integrity import check_database

    path = resolve_state_dir(ctx) / DB_NAME
    try:
        problems = check_database(path, full=full)
    except HistoryMissing as exc:
        die(str(exc))
    except HistoryError as exc:
        die(str(exc))
    how = "integrity_check" if full else "quick_check"
    if not problems:
        click.echo(f"{path}: OK ({how})")
        return
    click.echo(f"{path}: DAMAGED ({how}): {problems[0]}")
    for p in problems[1:]:
        click.echo(f"  {p}")
    click.echo(f"recover it or move it aside and start afresh: {RECOVERY_DOC}")
    sys.exit(2)
