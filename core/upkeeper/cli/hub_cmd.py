"""``upkeeper hub nats-config`` (the hub's production nats-server configuration) and
``upkeeper hub sync`` (push revocations and provision sites on a running server)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from upkeeper.cli.state import die, open_history, resolve_state_dir


@click.group()
def hub() -> None:
    """The hub's NATS server: configuration and keeping it in step with the sites."""


@hub.command("nats-config")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Write the configuration here (mode 600: it names the key file).")
@click.option("--tls-cert", required=True, type=click.Path(dir_okay=False, exists=True),
              help="The hub's TLS certificate (PEM, full chain) as workers verify it.")
@click.option("--tls-key", required=True, type=click.Path(dir_okay=False, exists=True),
              help="Its private key (PEM).")
@click.option("--store-dir", required=True, type=click.Path(file_okay=False),
              help="Where nats-server keeps JetStream data and account JWTs.")
@click.option("--listen", default="0.0.0.0:4222", show_default=True, metavar="HOST:PORT")
@click.option("--websocket-port", type=click.IntRange(1, 65535),
              help="Also accept workers over WebSocket with TLS on this port (443 where"
              " only HTTPS leaves a client network).")
@click.option("--server-name", default="upkeeper-hub", show_default=True)
@click.pass_context
def nats_config(ctx: click.Context, output: str, tls_cert: str, tls_key: str,
                store_dir: str, listen: str, websocket_port: int | None,
                server_name: str) -> None:
    """Write a nats-server configuration for the hub: JetStream, TLS, operator JWT
    with the account resolver, no anonymous access."""
    from upkeeper.sites import credentials_db as table
    from upkeeper.sites.credentials import Authority, CredentialsError, write_private
    from upkeeper.sites.natsconf import ConfigValueError, NatsConfig, render

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        die(f"--listen {listen!r}: expected HOST:PORT")
    state_dir = resolve_state_dir(ctx)
    try:
        authority = Authority.open(state_dir)
        revocations = table.revocations(open_history(state_dir, create=True))
        text = render(NatsConfig(store_dir=Path(store_dir).resolve(),
                                 tls_cert=Path(tls_cert).resolve(),
                                 tls_key=Path(tls_key).resolve(), host=host, port=int(port),
                                 websocket_port=websocket_port, server_name=server_name),
                      authority, authority.current_account_jwt(revocations))
    except (CredentialsError, ConfigValueError) as exc:
        die(str(exc))
    target = Path(output)
    write_private(target, text)
    os.makedirs(store_dir, mode=0o700, exist_ok=True)
    click.echo(f"wrote {target} (mode 600); start it with: nats-server -c {target}")
    click.echo(f"the hub connects with: upkeeper serve --hub tls://HOST:{port} --hub-creds"
               f" {authority.hub_creds}")
    click.echo(f"add sites with: upkeeper sites add NAME --hub tls://HOST:{port}")


@hub.command("sync")
@click.option("--hub", "hub_url", metavar="URL", help="The hub's NATS URL (remembered).")
@click.option("--ca", type=click.Path(dir_okay=False, exists=True),
              help="CA certificate of the hub's TLS certificate.")
@click.pass_context
def sync(ctx: click.Context, hub_url: str | None, ca: str | None) -> None:
    """Push revocations to the server and provision sites added while it was away."""
    import asyncio

    from upkeeper.cli.sites_cmd import _hub, existing_authority
    from upkeeper.sites.credentials_admin import sync_hub
    from upkeeper.sites.credentials_server import ServerError

    state_dir = resolve_state_dir(ctx)
    authority = existing_authority(state_dir)
    target = _hub(authority, hub_url, ca)
    if target is None:
        die("no hub URL known: give --hub tls://HOST:PORT")
    try:
        done = asyncio.run(sync_hub(open_history(state_dir), authority, target))
    except ServerError as exc:
        die(str(exc))
    click.echo(f"account pushed to {target.url}; provisioned: {', '.join(done) or 'none'}")
