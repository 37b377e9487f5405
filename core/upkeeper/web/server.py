"""Serving the dashboard with uvicorn: the bind address and its rule (loopback by default;
any other address only with users configured), TLS from certificate files, and running
in the foreground (``upkeeper web``) or in a thread beside ``upkeeper serve``.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from upkeeper import gcpolicy
from upkeeper.store.history import History
from upkeeper.web.auth import Users
from upkeeper.web.site import WebConfig

log = logging.getLogger("upkeeper.web")
DEFAULT_BIND = "127.0.0.1:8470"


class WebSetupError(ValueError):
    """The dashboard cannot start as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":  # what it is called is not what it is: resolve it
            try:
                found = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except OSError:
                return False
            return bool(found) and all(ipaddress.ip_address(str(f[4][0]).split("%")[0])
                                       .is_loopback for f in found)
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a name: it may resolve to anything

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_bind(text: str) -> Bind:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``PORT`` (then on 127.0.0.1)."""
    text = text.strip()
    host, port = "127.0.0.1", text
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) <= 65535 or not host:
        raise WebSetupError(f"--bind {text!r}: expected HOST:PORT, e.g. {DEFAULT_BIND}")
    return Bind(host, int(port))


def check_setup(bind: Bind, history: History, tls_cert: str | None,
                tls_key: str | None) -> None:
    """Refuse what would expose the dashboard: another address than loopback without
    users, half a TLS configuration, unreadable certificate files."""
    if bool(tls_cert) != bool(tls_key):
        raise WebSetupError("--tls-cert and --tls-key go together")
    if tls_cert and tls_key:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert,
                                                                                tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise WebSetupError(f"--tls-cert {tls_cert} / --tls-key {tls_key}: {exc}"
                                ) from None
    if not bind.loopback and not Users(history).configured():
        raise WebSetupError(
            f"refusing to serve the dashboard on {bind} without authentication: add a user"
            " first (upkeeper web user add NAME --role viewer|operator), or bind"
            f" {DEFAULT_BIND}")
    if not bind.loopback and not tls_cert:
        log.warning("serving the dashboard on %s without TLS: put it behind an HTTPS"
                    " reverse proxy (docs/web.md) and pass --secure-cookies", bind)


class WebServer:
    """The dashboard served by uvicorn on an already bound socket (so port 0 works and
    :attr:`port` is known before the first request)."""

    def __init__(self, history: History, bind: Bind, *, tls_cert: str | None = None,
                 tls_key: str | None = None, secure_cookies: bool = False,
                 inventory: dict[str, Any] | None = None) -> None:
        import uvicorn

        from upkeeper.web.app import create_app

        check_setup(bind, history, tls_cert, tls_key)
        self.history = history
        config = WebConfig(tls=bool(tls_cert), secure_cookies=secure_cookies,
                           inventory=inventory or {}, public=not bind.loopback)
        family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((bind.host, bind.port))
        except OSError as exc:
            self.socket.close()
            raise WebSetupError(f"cannot listen on {bind}: {exc.strerror or exc}") from None
        self.socket.listen(128)
        self.port = self.socket.getsockname()[1]
        self.scheme = "https" if tls_cert else "http"
        self.url = f"{self.scheme}://{Bind(bind.host, self.port)}/"
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(history, config), ssl_certfile=tls_cert, ssl_keyfile=tls_key,
            log_level="warning", access_log=False, server_header=False,
            proxy_headers=False))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in the foreground until SIGINT/SIGTERM."""
        gcpolicy.settle()
        self.server.run(sockets=[self.socket])

    def start(self) -> None:
        """Serve in a daemon thread (beside ``serve``, in tests)."""
        self._thread = threading.Thread(target=self.server.run, kwargs={
            "sockets": [self.socket]}, name="upkeeper-web", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.socket.close()


def inventory_vars(inventory: Any) -> dict[str, Any]:
    """Host name -> vars of a loaded inventory (for maintenance windows)."""
    if inventory is None:
        return {}
    return {h.name: dict(h.vars) for h in inventory.select("all")}

