"""Shared pieces of the notifiers: delivery errors and TLS contexts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl

log = logging.getLogger("upkeeper.notify")


class DeliveryError(Exception):
    """A message could not be delivered; ``retryable`` says whether trying again may help
    (core's retry loop reads it)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def tls_context(verify: bool, ca_file: str | None, what: str) -> ssl.SSLContext:
    """A verifying client context (system CAs, or ``ca_file``); opting out is warned about."""
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        log.warning("%s: TLS certificate verification is disabled (tls_verify: false)", what)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def safe_url(url: str) -> str:
    """scheme://host[:port] only: webhook paths and queries often embed the token."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}" if parts.netloc else "<url>"
