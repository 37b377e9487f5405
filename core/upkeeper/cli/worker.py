"""``upkeeper worker``: run a site's jobs inside its client network (dials out only)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from upkeeper import gcpolicy
from upkeeper.cli.common import AppState


@click.command()
@click.option("--site", required=True, help="The site (client network) this worker serves.")
@click.option("--hub", "hub_url", required=True, envvar="UPKEEPER_HUB", metavar="URL",
              help="NATS URL of the hub, e.g. tls://hub.example.net:4222.")
@click.option("--creds", type=click.Path(exists=True, dir_okay=False),
              envvar="UPKEEPER_WORKER_CREDS", help="The site's NATS credentials file.")
@click.option("--ca", "ca_file", type=click.Path(exists=True, dir_okay=False),
              envvar="UPKEEPER_WORKER_CA",
              help="CA certificate that signed the hub's TLS certificate (a private CA);"
              " default: the system's trust store.")
@click.option("--secrets", "secrets_file", type=click.Path(exists=True, dir_okay=False),
              envvar="UPKEEPER_WORKER_SECRETS",
              help="YAML file of the site's secret vars (vars: / hosts: HOST:).")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Jobs (hosts) run in parallel.")
@click.option("--heartbeat", default=10.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds between heartbeats.")
@click.pass_obj
def worker(app: AppState, site: str, hub_url: str, creds: str | None, ca_file: str | None,
           secrets_file: str | None, concurrency: int, heartbeat: float) -> None:
    """Pull SITE's jobs from the hub, run them against hosts here, send results back."""
    from upkeeper.sites.execute import SecretsError, WorkerSecrets
    from upkeeper.sites.subjects import SiteNameError, check_site
    from upkeeper.sites.worker import Worker, WorkerOptions
    from upkeeper.store.history import default_state_dir

    try:
        check_site(site)
        secrets = WorkerSecrets(Path(secrets_file) if secrets_file else None)
    except (SiteNameError, SecretsError) as exc:
        raise click.ClickException(str(exc)) from None
    state_dir = Path(app.state_dir) if app.state_dir else default_state_dir()
    w = Worker(site, hub_url, app.plugins, state_dir / "worker" / site, creds=creds,
               ca_file=ca_file, secrets=secrets,
               options=WorkerOptions(concurrency=concurrency, heartbeat=heartbeat))

    async def main() -> None:
        gcpolicy.settle()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await w.run(stop)

    asyncio.run(main())
    sys.exit(0)
