"""Adding, rotating and revoking sites: the sites table, the authority's keys and the
server kept in step. A server that cannot be reached is not an error for ``add`` (the
hub creates the site's stream when it first queues a job there) but is one for
``revoke`` (the revocation is recorded and must still reach the server: the command
says how).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from upkeeper.sites import credentials_db as table
from upkeeper.sites.credentials import Authority, SiteCreds, write_private
from upkeeper.sites.credentials_server import (
    ServerError,
    connect,
    provision_site,
    push_account_jwt,
)

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["AddOutcome", "HubTarget", "RevokeOutcome", "SiteExists", "add_site",
           "load_hub", "push_revocations", "revoke_site", "save_hub", "sync_hub"]


class SiteExists(RuntimeError):
    """``sites add`` for a site that has live credentials (use rotate)."""


@dataclass(frozen=True)
class HubTarget:
    """Where the hub's nats-server is, as workers and this machine reach it."""

    url: str
    ca_file: Path | None = None


def save_hub(authority: Authority, hub: HubTarget) -> None:
    write_private(authority.root / "hub.json", json.dumps(
        {"url": hub.url, "ca_file": str(hub.ca_file) if hub.ca_file else None}) + "\n")


def load_hub(authority: Authority) -> HubTarget | None:
    path = authority.root / "hub.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return HubTarget(str(data["url"]), Path(data["ca_file"]) if data.get("ca_file") else None)


@dataclass(frozen=True)
class AddOutcome:
    creds: SiteCreds
    provisioned: bool
    server_note: str
    rotated_from: str | None = None


@dataclass(frozen=True)
class RevokeOutcome:
    revoked_at: int
    pushed: bool
    server_note: str


def add_site(history: History, authority: Authority, site: str, hub: HubTarget | None,
             *, rotate: bool = False, out: Path | None = None) -> AddOutcome:
    """Issue ``site``'s worker credentials and record them. With ``rotate`` an existing
    site gets a new user and its old one is revoked (pushed to the server)."""
    row = table.get_site(history, site)
    old: str | None = None
    if row is not None and row.active:
        if not rotate:
            raise SiteExists(f"site {site!r} already has credentials (added"
                             f" {time.strftime('%Y-%m-%d', time.gmtime(row.created))}):"
                             " use --rotate for new ones (the old ones are revoked)")
        old = row.user_key
        table.revoke_site(history, site, int(time.time()))
    creds = authority.issue_site(site, out)
    table.add_site(history, site, creds.user_key, creds.issued)
    if hub is None:
        return AddOutcome(creds, False, "no hub URL given: the hub creates the site's stream,"
                          " consumer and lease bucket when it first queues a job there", old)
    try:
        asyncio.run(_provision_and_push(history, authority, hub, site, push=old is not None))
    except ServerError as exc:
        return AddOutcome(creds, False, f"{exc}; the hub creates the site's stream when it"
                          " first queues a job there" + ("; push the revocation with"
                                                         " 'upkeeper hub sync'" if old else ""),
                          old)
    table.mark_provisioned(history, site)
    return AddOutcome(creds, True, f"stream, consumer and lease bucket ready on {hub.url}",
                      old)


async def _provision_and_push(history: History, authority: Authority, hub: HubTarget,
                              site: str | None, *, push: bool) -> None:
    if push:
        await _push(history, authority, hub)
    if site is not None:
        nc = await connect(hub.url, authority.hub_creds, ca_file=hub.ca_file)
        try:
            await provision_site(nc, site)
        except Exception as exc:  # JetStream API errors: report, never a traceback
            raise ServerError(f"provisioning {site!r} failed: {exc}") from None
        finally:
            await nc.close()


async def _push(history: History, authority: Authority, hub: HubTarget) -> None:
    token = authority.current_account_jwt(table.revocations(history))
    nc = await connect(hub.url, authority.system_creds, ca_file=hub.ca_file)
    try:
        await push_account_jwt(nc, token)
    finally:
        await nc.close()


def revoke_site(history: History, authority: Authority, site: str,
                hub: HubTarget | None) -> RevokeOutcome:
    """Record the revocation, sign the account JWT with it and push that to the server,
    which then closes the site's connections and refuses its credentials."""
    row = table.get_site(history, site)
    if row is None:
        known = ", ".join(r.name for r in table.list_sites(history)) or "none"
        raise KeyError(f"no site {site!r} (sites: {known})")
    at = int(time.time())
    row = table.revoke_site(history, site, at)
    authority.account_jwt(table.revocations(history))
    creds = authority.site_creds_path(site)
    creds.unlink(missing_ok=True)
    if hub is None:
        return RevokeOutcome(int(row.revoked or at), False, "no hub URL known")
    try:
        asyncio.run(_push(history, authority, hub))
    except ServerError as exc:
        return RevokeOutcome(int(row.revoked or at), False, str(exc))
    return RevokeOutcome(int(row.revoked or at), True, f"pushed to {hub.url}")


def push_revocations(history: History, authority: Authority, hub: HubTarget) -> None:
    """Push the current account JWT (all revocations); :class:`ServerError` if not."""
    asyncio.run(_push(history, authority, hub))


async def sync_hub(history: History, authority: Authority, hub: HubTarget) -> list[str]:
    """For the hub's start: push the account JWT (so no revocation is left behind) and
    provision every active site not provisioned yet. Returns the sites provisioned."""
    await _push(history, authority, hub)
    done = []
    for row in table.list_sites(history):
        if row.active and row.provisioned is None:
            await _provision_and_push(history, authority, hub, row.name, push=False)
            table.mark_provisioned(history, row.name)
            done.append(row.name)
    return done
