"""``upkeeper state``: the current state of every client, host and check across all
playbooks, grouped by client; a host that is down is one line. Exits with the worst
current status (monitoring-plugin codes; a stale result counts as UNKNOWN).
"""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from upkeeper.cli.output import STATUS_STYLE, print_table, to_json
from upkeeper.cli.state import die, open_history, resolve_state_dir
from upkeeper.models import Status
from upkeeper.monthly.state import CheckState, FleetState, HostState, current_state
from upkeeper.store.history import DB_NAME


def age_text(age: timedelta) -> str:
    """``45s``, ``12m``, ``3h 05m``, ``2d 04h``: short enough for a table column."""
    s = int(age.total_seconds())
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def _check_row(client: str, c: CheckState) -> tuple[str, ...]:
    status = c.status.value + (" (stale)" if c.stale else "")
    return (client, c.host, c.name, status, age_text(c.age), c.summary)


def _down_row(client: str, h: HostState) -> tuple[str, ...]:
    newest = min(c.age for c in h.checks)
    return (client, h.host, f"({len(h.checks)} checks)", "DOWN", age_text(newest),
            f"unreachable: {h.down_reason}")


def rows(state: FleetState) -> tuple[list[tuple[str, ...]], list[str | None]]:
    """Table rows and their rich styles, one row per down host."""
    out: list[tuple[str, ...]] = []
    styles: list[str | None] = []
    for client in state.clients:
        for host in client.hosts:
            if host.down:
                out.append(_down_row(client.name, host))
                styles.append(STATUS_STYLE[Status.CRIT])
                continue
            for check in host.checks:
                out.append(_check_row(client.name, check))
                styles.append(STATUS_STYLE[check.effective])
    return out, styles


@click.command("state")
@click.option("--client", metavar="NAME", help="Only this client's hosts.")
@click.option("--host", metavar="NAME", help="Only this host.")
@click.option("--problems", is_flag=True,
              help="Only problems: checks not OK, stale results and hosts that are down.")
@click.option("--format", "fmt", type=click.Choice(["table", "text", "json"]), default="table",
              show_default=True, help="table (also 'text') or json.")
@click.pass_context
def state(ctx: click.Context, client: str | None, host: str | None, problems: bool,
          fmt: str) -> None:
    """The latest result of every check on every host, from any playbook, grouped by
    client, with its age; stale results (older than their playbook's schedule allows)
    are marked.

    Exit 0 all OK, 1 worst is WARN, 2 CRIT, 3 UNKNOWN or stale (or no history).
    """
    state_dir = resolve_state_dir(ctx)
    if not (state_dir / DB_NAME).is_file():
        die(f"no history in {state_dir}: nothing has run with this state dir")
    history = open_history(state_dir)
    try:
        fleet = current_state(history, client=client, host=host)
    finally:
        history.close()
    if not fleet.clients:
        what = " and ".join(f"{k} {v!r}" for k, v in (("client", client), ("host", host)) if v)
        die(f"no results{' for ' + what if what else ''} in {state_dir}")
    shown = fleet.problems_only() if problems else fleet
    if fmt == "json":
        data = shown.to_dict()
        data["status"], data["exit_code"] = fleet.status.value, fleet.exit_code
        click.echo(to_json(data))
        sys.exit(fleet.exit_code)
    table, styles = rows(shown)
    if table:
        print_table(("Client", "Host", "Check", "Status", "Age", "Summary"), table,
                    styles=styles)
    counts = ", ".join(f"{n} {s}" for s, n in fleet.counts.items() if n)
    down = sum(len(c.down) for c in fleet.clients)
    stale = sum(h.stale for h in fleet.hosts)
    click.echo(f"{fleet.status.value}: {len(fleet.clients)} client(s), {len(fleet.hosts)}"
               f" host(s), {len(fleet.checks)} check(s): {counts}"
               + (f"; {down} host(s) down" if down else "")
               + (f"; {stale} stale" if stale else "")
               + ("" if table or not problems else "; no problems"),
               err=not sys.stdout.isatty())  # off a terminal, stdout stays pure rows
    sys.exit(fleet.exit_code)
