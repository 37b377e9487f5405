"""Shared pieces of the notifiers: delivery errors, TLS contexts, retries with backoff."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from upkeeper import Notification, Notifier

log = logging.getLogger("upkeeper.notify")


class DeliveryError(Exception):
    """A message could not be delivered; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def tls_context(verify: bool, ca_file: str | None, what: str) -> ssl.SSLContext:
    """A verifying client context (system CAs, or ``ca_file``); opting out is warned about."""
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


def send_with_retry(notifier: Notifier, notification: Notification, *, retries: int,
                    backoff: float, sleep: Callable[[float], None] = time.sleep,
                    redact: Callable[[str], str] = lambda s: s) -> tuple[int, str]:
    """Send, retrying retryable failures after ``backoff``, ``2*backoff``... seconds.

    :returns: (attempts made, last error or "" when delivered).
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            notifier.send(notification)
            return attempts, ""
        except Exception as exc:  # a notifier is third-party code; its failure is data
            error = redact(f"{type(exc).__name__}: {exc}" if not isinstance(exc, DeliveryError)
                           else str(exc))
            retryable = getattr(exc, "retryable", True)
            if not retryable or attempts > retries:
                return attempts, error
            delay = backoff * (2 ** (attempts - 1))
            log.info("%s: attempt %d failed (%s); retrying in %.1fs", notifier.name,
                     attempts, error, delay)
            sleep(delay)
