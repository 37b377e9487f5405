"""Site credentials and the hub's nats-server configuration against a real nats-server:
files kept secret, the user JWT carrying exactly the site's permissions, TLS verified,
no anonymous access, revocation dropping live connections, rotation."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.sites.authhub import AuthHub, cli, run, start_auth_hub
from tests.sites.natsserver import NatsServer, free_port
from tests.waiting import wait_for
from upkeeper.sites import subjects
from upkeeper.sites.credentials_jwt import decode_claims
from upkeeper.sites.credentials_server import tls_context
from upkeeper_notify.testserver import make_cert


@pytest.fixture
def auth_hub(tmp_path: Path) -> Iterator[AuthHub]:
    hub = start_auth_hub(tmp_path / "hub")
    yield hub
    hub.server.stop()


def _secrets(state_dir: Path) -> list[str]:
    """Every seed and JWT the authority holds."""
    found = []
    for path in (state_dir / "sites").rglob("*"):
        if path.is_file() and path.suffix in (".nk", ".creds", ".jwt"):
            for line in path.read_text().splitlines():
                if line.startswith(("SO", "SA", "SU", "eyJ")):
                    found.append(line.strip())
    return found


def test_add_keeps_secrets_private_and_prints_none(state_dir: Path) -> None:
    out = cli("sites", "add", "acme-hq").output
    root = state_dir / "sites"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    files = [p for p in root.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"operator.nk", "system.nk", "account.nk", "hub.creds",
                                       "system.creds", "acme-hq.creds"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    secrets = _secrets(state_dir)
    assert len(secrets) >= 8
    for secret in secrets:
        assert secret not in out
        assert secret[:20] not in out
    assert "upkeeper worker --site acme-hq --hub" in out
    assert str(root / "creds" / "acme-hq.creds") in out


def test_site_user_carries_exactly_its_permissions(state_dir: Path) -> None:
    cli("sites", "add", "acme-hq")
    creds = (state_dir / "sites" / "creds" / "acme-hq.creds").read_text()
    token = creds.split("-----BEGIN NATS USER JWT-----\n")[1].split("\n")[0]
    nats_claims = decode_claims(token)["nats"]
    want = subjects.worker_permissions("acme-hq")
    assert nats_claims["pub"] == {"allow": want["publish"]["allow"]}
    assert nats_claims["sub"] == {"allow": want["subscribe"]["allow"]}
    assert "resp" not in nats_claims  # may not answer requests
    account = (state_dir / "sites" / "account.nk").read_bytes()
    assert decode_claims(token)["iss"] != account.decode()  # the public key, not the seed


def test_add_refuses_a_bad_name_and_a_second_add(state_dir: Path) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.main import main

    bad = CliRunner().invoke(main, ["sites", "add", "Acme.HQ"])
    assert bad.exit_code == 3 and "invalid site name" in bad.output
    cli("sites", "add", "acme")
    again = CliRunner().invoke(main, ["sites", "add", "acme"])
    assert again.exit_code == 3 and "--rotate" in again.output


def test_key_readable_by_others_is_refused(state_dir: Path) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.main import main

    cli("sites", "add", "acme")
    os.chmod(state_dir / "sites" / "account.nk", 0o644)
    res = CliRunner().invoke(main, ["sites", "add", "other"])
    assert res.exit_code == 3 and "chmod 600" in res.output


def test_config_serves_tls_with_verification_and_no_anonymous_access(
        auth_hub: AuthHub) -> None:
    conf = auth_hub.server.conf.read_text()
    assert stat.S_IMODE(auth_hub.server.conf.stat().st_mode) == 0o600
    assert "resolver" in conf and "system_account" in conf and "tls {" in conf
    for secret in _secrets(auth_hub.state_dir):
        if secret.startswith("S"):
            assert secret not in conf  # only JWTs (public) go into the configuration

    async def attempts() -> dict[str, str]:
        out = {}
        nc = await auth_hub.hub_client()  # TLS, certificate checked against the test CA
        out["hub"] = "ok" if nc.is_connected else "no"
        await nc.close()
        tries: dict[str, dict[str, Any]] = {
            "anonymous": {"tls": tls_context(auth_hub.ca)},
            "plain": {"user_credentials": str(auth_hub.hub_creds)},
            "untrusted": {"user_credentials": str(auth_hub.hub_creds),
                          "tls": tls_context(None)},
        }
        for name, kwargs in tries.items():
            url = auth_hub.url if name != "plain" else f"nats://127.0.0.1:{auth_hub.server.port}"
            try:
                c = await nats.connect(url, allow_reconnect=False, connect_timeout=3,
                                       max_reconnect_attempts=1, reconnect_time_wait=0.2, **kwargs)
            except Exception as exc:
                out[name] = f"refused: {type(exc).__name__}: {exc}"
            else:
                out[name] = "connected"
                await c.close()
        return out

    res = run(attempts())
    assert res["hub"] == "ok"
    assert res["anonymous"].startswith("refused") and "authorization" in res["anonymous"].lower()
    assert res["untrusted"].startswith("refused") and "certificate" in res["untrusted"].lower()
    assert res["plain"].startswith("refused")


def test_websocket_listener_speaks_tls(tmp_path: Path, state_dir: Path) -> None:
    cert, key = make_cert(tmp_path)
    port, ws = free_port(), free_port()
    server = NatsServer(tmp_path / "nats", port=port)
    server.root.mkdir()
    cli("hub", "nats-config", "-o", str(server.conf), "--tls-cert", str(cert), "--tls-key",
        str(key), "--store-dir", str(tmp_path / "store"), "--listen", f"127.0.0.1:{port}",
        "--websocket-port", str(ws))
    server.start()
    try:
        ctx = tls_context(cert)
        key_b64 = base64.b64encode(os.urandom(16)).decode()
        with socket.create_connection(("127.0.0.1", ws), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall((f"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key_b64}\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = tls.recv(4096).decode(errors="replace")
        assert head.startswith("HTTP/1.1 101"), head
        with socket.create_connection(("127.0.0.1", ws), timeout=5) as raw, \
                pytest.raises(ssl.SSLError):
            tls_context(None).wrap_socket(raw, server_hostname="localhost").do_handshake()
    finally:
        server.stop()


def test_revoke_drops_the_live_worker_and_refuses_its_credentials(auth_hub: AuthHub) -> None:
    auth_hub.add_site("acme")
    auth_hub.add_site("beta")
    acme_creds = auth_hub.creds("acme").read_bytes()

    async def scenario() -> None:
        acme = await auth_hub.worker("acme")
        beta = await auth_hub.worker("beta")
        await asyncio.to_thread(cli, "sites", "revoke", "acme",
                                "--state-dir", str(auth_hub.state_dir))
        for _ in range(250):
            if acme.nc.is_closed:
                break
            await asyncio.sleep(0.02)
        assert acme.nc.is_closed, "the revoked worker is still connected"
        assert beta.nc.is_connected and beta.disconnects == 0
        await beta.nc.flush(timeout=5)
        copy = auth_hub.root / "kept.creds"
        copy.write_bytes(acme_creds)
        with pytest.raises(Exception, match=r"(?i)authoriz|revoked"):
            await auth_hub.worker("acme", creds=copy)
        await beta.nc.close()

    run(scenario())
    listing = json.loads(cli("sites", "list", "--format", "json", "--state-dir",
                             str(auth_hub.state_dir)).output)
    assert {r["name"]: r["status"] for r in listing} == {"acme": "revoked", "beta": "active"}


@pytest.mark.slow
def test_revocation_survives_a_server_restart_from_the_written_config(
        auth_hub: AuthHub) -> None:
    auth_hub.add_site("acme")
    kept = auth_hub.root / "kept.creds"
    kept.write_bytes(auth_hub.creds("acme").read_bytes())
    cli("sites", "revoke", "acme", "--state-dir", str(auth_hub.state_dir))
    auth_hub.server.restart()

    async def attempt() -> None:
        with pytest.raises(Exception, match=r"(?i)authoriz|revoked"):
            await auth_hub.worker("acme", creds=kept)

    run(attempt())


def test_rotate_replaces_the_user_and_revokes_the_old_one(auth_hub: AuthHub) -> None:
    auth_hub.add_site("acme")
    old = auth_hub.root / "old.creds"
    old.write_bytes(auth_hub.creds("acme").read_bytes())
    out = json.loads(cli("sites", "add", "acme", "--rotate", "--format", "json",
                         "--state-dir", str(auth_hub.state_dir)).output)
    assert out["rotated_from"] and out["rotated_from"] != out["user"]

    async def attempt() -> None:
        new = await auth_hub.worker("acme")
        assert new.nc.is_connected
        await new.nc.close()
        with pytest.raises(Exception, match=r"(?i)authoriz|revoked"):
            await auth_hub.worker("acme", creds=old)

    run(attempt())


@pytest.mark.slow
def test_revoke_with_the_server_down_says_so_and_sync_pushes_it_later(
        auth_hub: AuthHub) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.main import main

    auth_hub.add_site("acme")
    kept = auth_hub.root / "kept.creds"
    kept.write_bytes(auth_hub.creds("acme").read_bytes())
    auth_hub.server.stop()
    res = CliRunner().invoke(main, ["sites", "revoke", "acme", "--state-dir",
                                    str(auth_hub.state_dir)])
    assert res.exit_code == 3 and "hub sync" in res.output
    # The server comes back from an old configuration that does not know the revocation.
    auth_hub.server.start()

    async def connects() -> bool:
        try:
            w = await auth_hub.worker("acme", creds=kept)
        except Exception:
            return False
        await w.nc.close()
        return True

    assert run(connects())
    cli("hub", "sync", "--state-dir", str(auth_hub.state_dir))
    assert wait_for(lambda: not run(connects()), "the revocation to take", timeout=10)


def test_list_shows_queued_jobs_from_the_server(auth_hub: AuthHub) -> None:
    auth_hub.add_site("acme")

    async def queue() -> None:
        nc = await auth_hub.hub_client()
        for n in range(2):
            await nc.jetstream().publish(subjects.jobs_subject("acme"), b"{}",
                                         headers={"Nats-Msg-Id": f"slot-1:h{n}"})
        await nc.close()

    run(queue())
    (row,) = json.loads(cli("sites", "list", "--format", "json", "--state-dir",
                            str(auth_hub.state_dir)).output)
    assert row["name"] == "acme" and row["status"] == "active" and row["provisioned"]
    assert row["queued"] == 2 and row["source"] == auth_hub.url
