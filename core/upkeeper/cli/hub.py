"""Opening the hub for ``upkeeper run --hub`` and ``serve --hub`` (one place for the flags)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # nats (and aiohttp, when installed) load only when --hub is given
    from upkeeper.sites.hub import Hub
    from upkeeper.sites.siterun import SiteRun
    from upkeeper.store.history import History


def wait_seconds(text: str) -> float:
    from upkeeper.schedule.specs import ScheduleError, duration_seconds

    try:
        return duration_seconds(text, "--hub-wait")
    except ScheduleError as exc:
        raise click.UsageError(str(exc)) from None


def start_hub(url: str, creds: str | None, history: History) -> Hub:
    from upkeeper.sites.hub import Hub, HubError
    from upkeeper.sites.streams import SiteSettings

    try:
        return Hub(url, history, creds=creds, settings=SiteSettings.from_env()).start()
    except HubError as exc:
        raise click.ClickException(str(exc)) from None


def open_hub(url: str | None, creds: str | None, wait: str,
             history: History) -> tuple[Hub | None, SiteRun | None]:
    """(hub, the run's seam) for ``--hub URL``, or (None, None) without it."""
    if not url:
        return None, None
    seconds = wait_seconds(wait)
    hub = start_hub(url, creds, history)
    return hub, hub.remote(time.time() + seconds)
