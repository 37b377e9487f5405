"""What every request handler shares: the dashboard's configuration, the objects it
works on (history, users, actions), and reading the caller and a form from a request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from argon2 import PasswordHasher
from starlette.exceptions import HTTPException
from starlette.requests import Request

from upkeeper.store.history import History
from upkeeper.web.actions import Actions
from upkeeper.web.auth import RateLimiter, User, Users

#: Form bodies are small; anything bigger is refused before it is read in full.
MAX_FORM_BYTES = 64 * 1024


@dataclass
class WebConfig:
    """How the dashboard is served.

    :param tls: served over HTTPS (cookies are ``Secure``, HSTS is sent).
    :param secure_cookies: ``Secure`` cookies without TLS here (behind an HTTPS proxy).
    :param allowed_hosts: Host header values accepted when no users are configured
        (a loopback dashboard must not answer a DNS-rebinding page).
    :param public: served on an address other than loopback: users are required for as
        long as it runs (removing the last one closes it, never opens it).
    :param inventory: hosts by name with their vars (maintenance windows), if given.
    :param hasher: argon2 parameters for new hashes (default: argon2-cffi's).
    """

    tls: bool = False
    secure_cookies: bool = False
    allowed_hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")
    public: bool = False
    inventory: dict[str, Any] = field(default_factory=dict)
    limiter: RateLimiter = field(default_factory=RateLimiter)
    hasher: PasswordHasher | None = None


class Site:
    """What every request handler needs: history, users, actions, config."""

    def __init__(self, history: History, config: WebConfig) -> None:
        self.history, self.config = history, config
        self.users = Users(history, hasher=config.hasher)
        self.actions = Actions(history)


def site_of(request: Request) -> Site:
    site: Site = request.app.state.site
    return site


def user_of(request: Request) -> User:
    user: User = request.state.user
    return user


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (first value of each field), at most MAX_FORM_BYTES."""
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_FORM_BYTES:
        raise HTTPException(413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}
