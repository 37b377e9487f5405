"""``upkeeper sites add|revoke|list``: issue a client site's worker credentials (a NATS
user allowed only that site's subjects), revoke them, and list the sites.

Seeds and JWTs are never printed: ``add`` prints the path of the ``.creds`` file (0600)
to copy to the worker and the worker's command line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from upkeeper.cli.output import print_table, to_json
from upkeeper.cli.state import die, open_history, resolve_state_dir

FORMATS = click.Choice(["table", "json"])


def existing_authority(state_dir: Path) -> Any:
    """The hub's signing keys in ``state_dir``; exit 3 with the reason when there are none
    yet (nothing is created)."""
    from upkeeper.sites.credentials import Authority, CredentialsError

    try:
        return Authority.open(state_dir, create=False)
    except CredentialsError as exc:
        die(str(exc))


def _hub(authority: Any, url: str | None, ca: str | None) -> Any:
    from upkeeper.sites.credentials_admin import HubTarget, load_hub, save_hub

    if url:
        given = HubTarget(url, Path(ca).resolve() if ca else None)
        save_hub(authority, given)
        return given
    kept = load_hub(authority)
    if kept is not None and ca:
        return HubTarget(kept.url, Path(ca).resolve())
    return kept


def _site(name: str) -> str:
    from upkeeper.sites.subjects import SiteNameError, check_site

    try:
        return check_site(name)
    except SiteNameError as exc:
        die(str(exc))


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts)) if ts else "-"


def _hub_options(fn: Any) -> Any:
    fn = click.option("--ca", type=click.Path(dir_okay=False, exists=True),
                      help="CA certificate that signed the hub's TLS certificate"
                      " (if not a public CA).")(fn)
    fn = click.option("--hub", "hub_url", metavar="URL",
                      help="The hub's NATS URL as workers reach it (tls://HOST:4222);"
                      " remembered in the state dir.")(fn)
    return fn


@click.group()
def sites() -> None:
    """Client sites: workers inside client networks that dial out to the hub."""


@sites.command("add")
@click.argument("name")
@_hub_options
@click.option("--rotate", is_flag=True,
              help="The site exists: issue new credentials and revoke the old ones.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the .creds file here (default: the state dir's sites/creds/).")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def add(ctx: click.Context, name: str, hub_url: str | None, ca: str | None, rotate: bool,
        output: str | None, fmt: str) -> None:
    """Issue credentials for site NAME and print what to copy to its worker."""
    from upkeeper.sites.credentials import Authority, CredentialsError
    from upkeeper.sites.credentials_admin import SiteExists, add_site

    site = _site(name)
    state_dir = resolve_state_dir(ctx)
    try:
        authority = Authority.open(state_dir)
        hub = _hub(authority, hub_url, ca)
        db = open_history(state_dir, create=True)
        outcome = add_site(db, authority, site, hub, rotate=rotate,
                           out=Path(output).resolve() if output else None)
    except (CredentialsError, SiteExists) as exc:
        die(str(exc))
    url = hub.url if hub else "tls://HUB:4222"
    command = ["upkeeper", "worker", "--site", site, "--hub", url,
               "--creds", f"/etc/upkeeper/{site}.creds"]
    data = {"site": site, "creds_file": str(outcome.creds.path), "user": outcome.creds.user_key,
            "provisioned": outcome.provisioned, "server": outcome.server_note,
            "rotated_from": outcome.rotated_from, "worker_command": " ".join(command),
            "copy": [str(outcome.creds.path)] + ([str(hub.ca_file)] if hub and hub.ca_file
                                                 else [])}
    if fmt == "json":
        click.echo(to_json(data))
        return
    click.echo(f"site {site}: credentials written to {outcome.creds.path} (mode 600,"
               " keep it secret: it is the site's password)")
    if outcome.rotated_from:
        click.echo(f"  the previous credentials ({outcome.rotated_from[:12]}...) are revoked")
    click.echo(f"  server: {outcome.server_note}")
    click.echo("Copy to the worker machine (e.g. scp, then chmod 600):")
    click.echo(f"  {outcome.creds.path} -> /etc/upkeeper/{site}.creds")
    if hub is not None and hub.ca_file:
        click.echo(f"  {hub.ca_file} -> the worker's trust store (the hub's certificate"
                   " is checked against it; docs/sites.md, TLS)")
    click.echo("Run there (see docs/sites.md for the systemd unit and Windows service):")
    click.echo(f"  {' '.join(command)}")
    if hub is None:
        click.echo("  (give --hub URL to fill in the hub's address)")


@sites.command("revoke")
@click.argument("name")
@_hub_options
@click.pass_context
def revoke(ctx: click.Context, name: str, hub_url: str | None, ca: str | None) -> None:
    """Revoke site NAME's credentials: its workers are disconnected and refused."""
    from upkeeper.sites.credentials_admin import revoke_site

    site = _site(name)
    state_dir = resolve_state_dir(ctx)
    authority = existing_authority(state_dir)
    hub = _hub(authority, hub_url, ca)
    try:
        outcome = revoke_site(open_history(state_dir), authority, site, hub)
    except KeyError as exc:
        die(str(exc.args[0]))
    if not outcome.pushed:
        die(f"site {site} is revoked in the hub's records but the server has not taken it"
            f" yet ({outcome.server_note}): run 'upkeeper hub sync --hub URL' when the"
            " server is reachable (the hub also pushes it when it starts)")
    click.echo(f"site {site} revoked at {_when(outcome.revoked_at)}: {outcome.server_note};"
               " its workers are disconnected and their credentials refused")


def site_rows(state_dir: Path) -> list[dict[str, Any]]:
    """What ``sites list`` shows: the sites table joined with the hub's view of each
    site (workers live or last seen, queued jobs and the oldest one's age, last result);
    queued jobs come from the server's streams when it answers, else the hub's records."""
    import asyncio

    from upkeeper.sites import credentials_db as table
    from upkeeper.sites.liveness import site_overview
    from upkeeper.store.history import DB_NAME

    if not (state_dir / DB_NAME).exists():
        return []  # nothing added, nothing run here yet
    db = open_history(state_dir)
    sites = table.list_sites(db)
    names = {r.name for r in sites if r.active}

    async def overview() -> tuple[list[Any], str]:
        from upkeeper.sites.credentials import Authority, CredentialsError
        from upkeeper.sites.credentials_admin import load_hub
        from upkeeper.sites.credentials_server import ServerError, connect

        try:
            authority = Authority.open(state_dir, create=False)
            hub = load_hub(authority)
            if hub is None:
                raise ServerError("no hub URL known")
            nc = await connect(hub.url, authority.hub_creds, ca_file=hub.ca_file)
        except (CredentialsError, ServerError) as exc:
            return await site_overview(db, None, sites=names), f"hub's records ({exc})"
        try:
            return await site_overview(db, nc.jetstream(), sites=names), hub.url
        finally:
            await nc.close()

    live, source = asyncio.run(overview())
    by_name = {st.site: st.to_dict() for st in live}
    rows: list[dict[str, Any]] = []
    for r in sites:
        st = by_name.pop(r.name, {})
        rows.append({"name": r.name, "status": "revoked" if r.revoked else
                     ("offline" if st.get("offline") else "active"),
                     "created": _when(r.created), "revoked": _when(r.revoked) if r.revoked
                     else None, "provisioned": r.provisioned is not None,
                     "live_workers": st.get("live_workers", 0),
                     "last_seen": _when(st.get("last_seen")) if st.get("last_seen") else None,
                     "queued": st.get("queued", 0),
                     "oldest_queued_age_s": st.get("oldest_queued_age_s"),
                     "last_result": _when(st.get("last_result")) if st.get("last_result")
                     else None, "source": source,
                     "workers": st.get("workers", [])})
    for name, st in sorted(by_name.items()):  # seen by the hub, never added here
        rows.append({"name": name, "status": "unknown (no credentials issued here)",
                     "created": None, "revoked": None, "provisioned": False,
                     "live_workers": st["live_workers"], "queued": st["queued"],
                     "source": source})
    return rows


@sites.command("list")
@click.option("--format", "fmt", type=FORMATS, default="table")
@click.pass_context
def list_(ctx: click.Context, fmt: str) -> None:
    """Sites with their state."""
    rows = site_rows(resolve_state_dir(ctx))
    if fmt == "json":
        click.echo(to_json(rows))
        return
    if not rows:
        click.echo("no sites yet: upkeeper sites add NAME", err=True)
        return
    cols = ["name", "status", "live_workers", "last_seen", "queued", "oldest_queued_age_s",
            "last_result", "created", "revoked"]
    print_table(cols, [[r.get(c) if r.get(c) is not None else "-" for c in cols]
                       for r in rows], stream=sys.stdout)
