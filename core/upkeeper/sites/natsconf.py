"""The hub's production nats-server configuration (``upkeeper hub nats-config``):
JetStream with its store dir, TLS with the MSP's certificate, operator JWT with the
built-in full account resolver (account JWTs preloaded, later updates and revocations
pushed through the system account), an optional WebSocket listener with TLS. There is no
anonymous or plain-text user: every client presents a user JWT signed by the account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from upkeeper.sites.credentials import Authority

__all__ = ["NatsConfig", "auth_block", "render"]


class ConfigValueError(ValueError):
    """A value that cannot be put into the configuration safely."""


def _q(value: str | Path, what: str) -> str:
    text = str(value)
    if any(c in text for c in '"\\\n\r\0$'):
        raise ConfigValueError(f"{what} {text!r} contains a character the nats-server "
                               "configuration cannot hold (quote, backslash, $ or newline)")
    return json.dumps(text)


def auth_block(authority: Authority, account_jwt: str, resolver_dir: Path) -> str:
    """Operator, system account and the full resolver with both account JWTs preloaded
    (the resolver keeps whichever of a preload and a pushed JWT is newer)."""
    return (
        f"operator: {_q(authority.operator_jwt(), 'operator JWT')}\n"
        f"system_account: {authority.system.public}\n"
        "resolver {\n"
        "  type: full\n"
        f"  dir: {_q(resolver_dir, 'resolver dir')}\n"
        "  allow_delete: false\n"
        "  interval: \"2m\"\n"
        "}\n"
        "resolver_preload {\n"
        f"  {authority.system.public}: {_q(authority.system_account_jwt(), 'JWT')}\n"
        f"  {authority.account.public}: {_q(account_jwt, 'JWT')}\n"
        "}\n")


@dataclass(frozen=True)
class NatsConfig:
    """What the MSP chooses; everything else is fixed (secure) by :func:`render`."""

    store_dir: Path
    tls_cert: Path
    tls_key: Path
    host: str = "0.0.0.0"
    port: int = 4222
    websocket_port: int | None = None
    server_name: str = "upkeeper-hub"
    max_payload: int = 4 * 1024 * 1024


def render(cfg: NatsConfig, authority: Authority, account_jwt: str) -> str:
    tls = (f"  cert_file: {_q(cfg.tls_cert, 'TLS certificate')}\n"
           f"  key_file: {_q(cfg.tls_key, 'TLS key')}\n"
           "  timeout: 5\n")
    out = [
        "# Written by 'upkeeper hub nats-config'. Sites connect with user JWTs signed by\n"
        "# the upkeeper account; add and revoke them with 'upkeeper sites', not here.\n",
        f"server_name: {_q(cfg.server_name, 'server name')}\n",
        f"listen: {_q(f'{cfg.host}:{cfg.port}', 'listen address')}\n",
        f"max_payload: {int(cfg.max_payload)}\n",
        "tls {\n" + tls + "}\n",
        "jetstream {\n"
        f"  store_dir: {_q(cfg.store_dir / 'jetstream', 'store dir')}\n"
        "}\n",
        auth_block(authority, account_jwt, cfg.store_dir / "accounts"),
    ]
    if cfg.websocket_port is not None:
        out.append("websocket {\n"
                   f"  listen: {_q(f'{cfg.host}:{cfg.websocket_port}', 'websocket address')}\n"
                   "  tls {\n" + tls.replace("  ", "    ") + "  }\n"
                   "  compression: true\n"
                   "}\n")
    return "".join(out)
