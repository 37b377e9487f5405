"""Talking to the hub's nats-server as the authority: connect with a ``.creds`` file
(TLS verified against the system store or a given CA), push an account JWT through the
system account (revocations take effect at once: the server drops the revoked users'
connections), and provision a site's stream, consumer and lease bucket (the hub's own
:func:`upkeeper.sites.streams.ensure_site`).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client

from upkeeper.sites.streams import SiteSettings, ensure_results, ensure_site

__all__ = ["ServerError", "connect", "provision_site", "push_account_jwt", "tls_context",
           "tls_options"]

class _EofNoise(logging.Filter):
    """nats-py's TLS transport returns True from ``eof_received``; asyncio warns about it
    on every TLS connection's close, which says nothing to a user."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


_EOF_FILTER = _EofNoise()


class ServerError(RuntimeError):
    """The server could not be reached or refused what the authority asked."""


def tls_context(ca_file: str | Path | None) -> ssl.SSLContext:
    """Certificate and host name verified: against ``ca_file`` if given (an MSP's own
    CA), else the system's trust store."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def tls_options(url: str, ca_file: str | Path | None) -> dict[str, Any]:
    """``nats.connect`` options for TLS: a verifying context for ``tls://``/``wss://``
    URLs or when a CA file is given, nothing otherwise."""
    if url.startswith(("tls://", "wss://")) or ca_file:
        return {"tls": tls_context(ca_file)}
    return {}


async def connect(url: str, creds: Path, *, ca_file: str | Path | None = None,
                  inbox_prefix: str | None = None,
                  error_cb: Callable[[Exception], Awaitable[None]] | None = None,
                  **options: Any) -> Client:
    """One connection attempt (no endless reconnects for a CLI command)."""
    logging.getLogger("asyncio").addFilter(_EOF_FILTER)  # once: filters are a set
    opts: dict[str, Any] = {"user_credentials": str(creds), "connect_timeout": 5,
                            "allow_reconnect": False, "max_reconnect_attempts": 1,
                            "reconnect_time_wait": 0.5}
    opts.update(tls_options(url, ca_file))
    if inbox_prefix:
        opts["inbox_prefix"] = inbox_prefix
    errors: list[Exception] = []

    async def keep(exc: Exception) -> None:
        errors.append(exc)

    opts["error_cb"] = error_cb or keep
    opts.update(options)
    try:
        return await nats.connect(url, **opts)
    except Exception as exc:  # nats-py raises many unrelated types for one failed connect
        why = errors[-1] if errors else exc
        raise ServerError(f"cannot connect to {url}: {type(why).__name__}: {why}") from None


async def push_account_jwt(nc: Client, token: str) -> None:
    """Send ``token`` (an account JWT) to the server over the system account's claims
    update; :class:`ServerError` unless the server answers that it took it."""
    try:
        reply = await nc.request("$SYS.REQ.CLAIMS.UPDATE", token.encode(), timeout=5)
    except Exception as exc:  # timeouts and no-responders alike mean "not taken"
        raise ServerError(f"the server did not confirm the account update: {exc!r}") from None
    try:
        body = json.loads(reply.data)
    except ValueError:
        raise ServerError(f"unexpected answer to the account update: {reply.data[:200]!r}"
                          ) from None
    data = body.get("data") or {}
    if body.get("error") or data.get("code") != 200:
        raise ServerError(f"the server refused the account update: {body.get('error') or data}")


async def provision_site(nc: Client, site: str, settings: SiteSettings | None = None) -> None:
    """Create (or align) ``site``'s jobs stream, shared pull consumer and lease bucket and
    the hub-wide results stream, exactly as the hub does on its start. Idempotent."""
    settings = settings or SiteSettings.from_env()
    js = nc.jetstream()
    await ensure_results(js, settings)
    await ensure_site(js, site, settings)
