"""``upkeeper docs``: build client as-built documents from the fact snapshots in history
(``build``), approve a client's current state as its baseline (``baseline approve``) and
print the JSON Schema of ``docs.json`` (``schema``)."""

from __future__ import annotations

import gc
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from upkeeper.cli.state import open_history, resolve_state_dir

if TYPE_CHECKING:
    from upkeeper.asbuilt.categories import DocCategory
    from upkeeper.asbuilt.render import Hygiene
    from upkeeper.store.history import History


def hygiene() -> Hygiene:
    """Core's secret masking, text cleaning and Markdown escaping for the renderers."""
    from upkeeper.after_run.asbuilt_step import doc_hygiene

    return doc_hygiene()


def _date(value: str | None, what: str) -> float | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{what}: {value!r} is not a date (YYYY-MM-DD or ISO 8601)"
                                 ) from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _categories(ctx: click.Context) -> list[DocCategory]:
    from upkeeper.asbuilt.api import doc_categories

    plugins = getattr(ctx.find_root().obj, "plugins", None)
    if plugins is None:
        from upkeeper.plugins import get_plugin_manager

        plugins = get_plugin_manager()
    return doc_categories(plugins)


def _open(ctx: click.Context) -> History:
    from upkeeper.after_run.asbuilt_step import ingest_facts

    history = open_history(resolve_state_dir(ctx), create=False)
    ingest_facts(history)  # results stored by runs that had no after-run step
    return history


@click.group()
def docs() -> None:
    """Client documentation: as-built documents built from the facts ``docs.collect``
    gathers, with what changed and drift from an approved baseline."""


@docs.command()
@click.option("--client", "clients", multiple=True, metavar="NAME",
              help="Only this client (repeatable; default: every documented client).")
@click.option("-o", "--output", "output", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write (one folder per client).")
@click.option("--since", metavar="DATE",
              help="List changes since this date (default: the start of the previous month).")
@click.option("--as-of", "as_of", metavar="DATE",
              help="Document the state at this time (default: the newest snapshot).")
@click.option("--cert-days", default=30, show_default=True, type=click.IntRange(0, 3650),
              help="Certificates expiring within this many days are flagged.")
@click.option("--stale-days", default=7, show_default=True, type=click.IntRange(1, 3650),
              help="Hosts not seen for this many days are flagged.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None,
              help="Processes rendering host pages (default: up to 2, as cores allow).")
@click.pass_context
def build(ctx: click.Context, clients: tuple[str, ...], output: Path, since: str | None,
          as_of: str | None, cert_days: int, stale_days: int, jobs: int | None) -> None:
    """Write per-client documents: index and host pages (HTML, Markdown), docs.json with
    one JSON file per host, and hosts.csv. Same snapshots, same bytes."""
    from upkeeper.asbuilt.document import iter_documents
    from upkeeper.asbuilt.render import write_documents
    from upkeeper.asbuilt.snapshots import clients as documented

    started = time.monotonic()
    categories = _categories(ctx)
    # Decoded fact documents are millions of acyclic objects: the cycle collector would
    # walk them again and again (a fifth of the time) and find nothing. The process ends
    # after the build.
    gc.disable()
    history = _open(ctx)
    try:
        known = documented(history)
        missing = sorted(set(clients) - set(known))
        if missing:
            raise click.ClickException(
                f"no documented hosts for client {', '.join(map(repr, missing))}; "
                f"documented clients: {', '.join(known) or 'none (run docs.collect first)'}")
        if not known:
            raise click.ClickException("no fact snapshots in history yet: run a playbook "
                                       "with the docs.collect check first")
        names = sorted(set(clients)) or known
        docs_iter = iter_documents(history, names, as_of=_date(as_of, "--as-of"),
                                   since=_date(since, "--since"), categories=categories,
                                   cert_days=cert_days, stale_days=stale_days)
        written = write_documents(docs_iter, output, hygiene(), categories, names=names,
                                  index=not clients,
                                  workers=jobs or min(2, os.cpu_count() or 1))
    finally:
        gc.enable()
        history.close()
    name, size = written.largest
    hosts = sum(1 for f in written.files if f.endswith(".json") and "/hosts/" in f)
    click.echo(f"{output}: {len(names)} client(s), {hosts} host(s), "
               f"{len(written.files)} files (largest {name}, {size} bytes) in "
               f"{time.monotonic() - started:.1f}s", err=True)


@docs.command()
def schema() -> None:
    """Print the JSON Schema of docs.json and of the per-host JSON files."""
    from upkeeper.asbuilt.document import schema_text

    click.echo(schema_text(), nl=False)


@docs.group()
def baseline() -> None:
    """The approved baseline later documents are compared with."""


@baseline.command()
@click.option("--client", required=True, metavar="NAME", help="The client to approve.")
@click.pass_context
def approve(ctx: click.Context, client: str) -> None:
    """Record the client's current documented state as approved."""
    from upkeeper.asbuilt.baseline import approve as approve_state
    from upkeeper.asbuilt.snapshots import clients as documented
    from upkeeper.asbuilt.snapshots import latest_time

    history = _open(ctx)
    try:
        if client not in documented(history):
            raise click.ClickException(f"no documented hosts for client {client!r}")
        as_of = latest_time(history) or time.time()
        hosts = approve_state(history, client, as_of=as_of, approved_at=time.time())
    finally:
        history.close()
    click.echo(f"baseline of {client} approved: {hosts} host(s)", err=True)
