"""Opening the hub for ``upkeeper run --hub`` and ``serve --hub`` (one place for the flags).

Defaults come from the state dir's site authority (``STATE_DIR/sites/``, written by
``upkeeper sites add`` and ``hub nats-config``): the hub's credentials
``sites/hub.creds`` when ``--hub-creds`` is not given, and the CA remembered by
``sites add --ca`` for TLS. ``serve --hub`` also pushes the account JWT (revocations)
and provisions sites added while the server was away, as ``upkeeper hub sync`` does.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # nats (and aiohttp, when installed) load only when --hub is given
    from upkeeper.sites.credentials import Authority
    from upkeeper.sites.hub import Hub
    from upkeeper.sites.siterun import SiteRun
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.sites")


def wait_seconds(text: str) -> float:
    from upkeeper.schedule.specs import ScheduleError, duration_seconds

    try:
        return duration_seconds(text, "--hub-wait")
    except ScheduleError as exc:
        raise click.UsageError(str(exc)) from None


def _authority(state_dir: Path | None) -> Authority | None:
    """The state dir's site authority, or None when there is none (or it is unusable:
    said in the log, the hub then runs without its defaults)."""
    if state_dir is None or not (Path(state_dir) / "sites" / "account.nk").exists():
        return None
    from upkeeper.sites.credentials import Authority, CredentialsError

    try:
        return Authority.open(Path(state_dir), create=False)
    except CredentialsError as exc:
        log.warning("site authority not used: %s", exc)
        return None


def _ca_file(authority: Authority | None) -> Path | None:
    if authority is None:
        return None
    from upkeeper.sites.credentials_admin import load_hub

    try:
        kept = load_hub(authority)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: ignored: %s", authority.root / "hub.json", exc)
        return None
    return kept.ca_file if kept is not None else None


def sync_at_start(url: str, history: History, authority: Authority | None) -> None:
    """Push the account JWT (a revocation made while the server was away) and provision
    sites added meanwhile; a failure is logged, the hub starts anyway."""
    if authority is None:
        return
    import asyncio

    from upkeeper.sites.credentials_admin import HubTarget, sync_hub

    try:
        done = asyncio.run(sync_hub(history, authority, HubTarget(url, _ca_file(authority))))
    except Exception as exc:  # the server may refuse the system user: say it, go on
        log.warning("hub start: revocations not pushed to %s (%s); run 'upkeeper hub sync'"
                    " once the server takes them", url, exc)
        return
    log.info("hub start: account pushed to %s; provisioned: %s", url,
             ", ".join(done) or "none")


def start_hub(url: str, creds: str | None, history: History,
              state_dir: Path | None = None, *, sync: bool = False) -> Hub:
    from upkeeper.sites.hub import Hub, HubError
    from upkeeper.sites.streams import SiteSettings

    authority = _authority(state_dir)
    if creds is None and authority is not None and authority.hub_creds.exists():
        creds = str(authority.hub_creds)
    if sync:
        sync_at_start(url, history, authority)
    try:
        return Hub(url, history, creds=creds, ca_file=_ca_file(authority),
                   settings=SiteSettings.from_env()).start()
    except HubError as exc:
        raise click.ClickException(str(exc)) from None


def open_hub(url: str | None, creds: str | None, wait: str, history: History,
             state_dir: Path | None = None) -> tuple[Hub | None, SiteRun | None]:
    """(hub, the run's seam) for ``--hub URL``, or (None, None) without it."""
    if not url:
        return None, None
    seconds = wait_seconds(wait)
    hub = start_hub(url, creds, history, state_dir)
    return hub, hub.remote(time.time() + seconds)
