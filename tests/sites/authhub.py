"""A hub's nats-server in production shape for the credential tests: its configuration
written by ``upkeeper hub nats-config`` (TLS with a test CA, operator JWT, full
resolver), sites added and revoked through the real ``upkeeper sites`` commands, and
clients that connect as a worker does (creds file, site inbox prefix, error_cb)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from click.testing import CliRunner, Result
from nats.aio.client import Client

from tests.sites.natsserver import NatsServer, free_port
from upkeeper.cli.main import main
from upkeeper.sites import subjects
from upkeeper.sites.credentials_server import tls_context
from upkeeper_notify.testserver import make_cert


def cli(*args: str) -> Result:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, (args, res.output, res.exception)
    return res


@dataclass
class Worker:
    """A worker-side client of one site, recording every async error and disconnect."""

    site: str
    nc: Client
    errors: list[Exception] = field(default_factory=list)
    disconnects: int = 0

    def permission_errors(self) -> list[str]:
        return [str(e) for e in self.errors if "permissions violation" in str(e).lower()]


@dataclass
class AuthHub:
    root: Path
    state_dir: Path
    server: NatsServer
    ca: Path
    ws_port: int | None = None

    @property
    def url(self) -> str:
        return f"tls://127.0.0.1:{self.server.port}"

    @property
    def ws_url(self) -> str:
        return f"wss://localhost:{self.ws_port}"

    @property
    def hub_creds(self) -> Path:
        return self.state_dir / "sites" / "hub.creds"

    @property
    def system_creds(self) -> Path:
        return self.state_dir / "sites" / "system.creds"

    def add_site(self, site: str) -> dict[str, Any]:
        out = cli("sites", "add", site, "--hub", self.url, "--ca", str(self.ca),
                  "--format", "json", "--state-dir", str(self.state_dir))
        data: dict[str, Any] = json.loads(out.output)
        return data

    def creds(self, site: str) -> Path:
        return self.state_dir / "sites" / "creds" / f"{site}.creds"

    async def connect(self, creds: Path, url: str | None = None, **opts: Any) -> Client:
        return await nats.connect(url or self.url, user_credentials=str(creds),
                                  tls=tls_context(self.ca), allow_reconnect=False,
                                  max_reconnect_attempts=1, reconnect_time_wait=0.2,
                                  connect_timeout=5, **opts)

    async def hub_client(self) -> Client:
        return await self.connect(self.hub_creds)

    async def worker(self, site: str, creds: Path | None = None,
                     url: str | None = None) -> Worker:
        holder: list[Worker] = []
        errors: list[Exception] = []

        async def error_cb(exc: Exception) -> None:
            errors.append(exc)

        async def disconnected_cb() -> None:
            if holder:
                holder[0].disconnects += 1

        nc = await self.connect(creds or self.creds(site), url,
                                inbox_prefix=subjects.inbox_prefix(site),
                                error_cb=error_cb, disconnected_cb=disconnected_cb)
        w = Worker(site, nc, errors)
        holder.append(w)
        return w

    async def connz(self) -> list[dict[str, Any]]:
        """Every client connection the server has, from the system account."""
        nc = await self.connect(self.system_creds, name="connz")
        try:
            reply = await nc.request("$SYS.REQ.SERVER.PING.CONNZ",
                                     json.dumps({"subscriptions": False}).encode(), timeout=5)
            conns: list[dict[str, Any]] = json.loads(reply.data)["data"]["connections"]
            return conns
        finally:
            await nc.close()


def start_auth_hub(root: Path, *, websocket: bool = False) -> AuthHub:
    """Keys in ``root/state``, the config via the real command (with a WebSocket
    listener if asked), the server started."""
    root.mkdir(parents=True, exist_ok=True)
    state_dir = root / "state"
    tls_dir = root / "tls"
    tls_dir.mkdir()
    cert, key = make_cert(tls_dir)
    port = free_port()
    server = NatsServer(root / "nats", port=port)
    server.root.mkdir(parents=True)
    ws_port = free_port() if websocket else None
    cli("hub", "nats-config", "-o", str(server.conf), "--tls-cert", str(cert),
        "--tls-key", str(key), "--store-dir", str(root / "store"),
        "--listen", f"127.0.0.1:{port}", "--state-dir", str(state_dir),
        *(["--websocket-port", str(ws_port)] if ws_port else []))
    server.store = root / "store" / "jetstream"
    server.start()
    return AuthHub(root, state_dir, server, cert, ws_port)


def run(coro: Any) -> Any:
    return asyncio.run(coro)
