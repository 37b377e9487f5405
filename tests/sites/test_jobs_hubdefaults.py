"""The hub and the worker against a production-shaped server (TLS with a private CA,
operator JWTs): ``worker --ca``, the hub's credentials and CA defaulting to the state
dir's site authority, and ``serve --hub`` pushing revocations made while the server was
away."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.sites.authhub import AuthHub, run, start_auth_hub
from tests.sites.jobhelpers import wait_for


@pytest.fixture
def auth_hub(tmp_path: Path) -> Iterator[AuthHub]:
    hub = start_auth_hub(tmp_path / "hub")
    yield hub
    hub.server.stop()


def clean_env() -> dict[str, str]:
    """No trust store override: only --ca (or the remembered CA) can make TLS work."""
    return {k: v for k, v in os.environ.items()
            if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "UPKEEPER_HUB_CREDS")}


def upkeeper(*args: str, timeout: float = 60,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=timeout, env={**clean_env(), **(env or {})})


def connection_names(hub: AuthHub) -> list[str]:
    return [str(c.get("name", "")) for c in run(hub.connz())]


def test_worker_trusts_a_private_ca_with_ca_option(auth_hub: AuthHub, tmp_path: Path) -> None:
    auth_hub.add_site("acme")
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "upkeeper", "worker", "--site", "acme", "--hub",
             auth_hub.url, "--creds", str(auth_hub.creds("acme")), "--ca", str(auth_hub.ca),
             "--state-dir", str(tmp_path / "w")],
            stdout=out, stderr=subprocess.STDOUT, env=clean_env())
    try:
        wait_for(lambda: any(n.startswith("upkeeper-worker acme")
                             for n in connection_names(auth_hub)), 30,
                 "the worker to connect over TLS with the private CA")
    finally:
        proc.terminate()
        proc.wait(30)
    assert "CERTIFICATE_VERIFY_FAILED" not in log.read_text()


def site_playbook(tmp: Path) -> tuple[Path, Path]:
    inv = tmp / "inv.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {
        "h1": {"ansible_connection": "local", "site": "acme"}}}}))
    pb = tmp / "pb.yml"
    pb.write_text(yaml.safe_dump({"name": "site", "hosts": "all", "checks": [
        {"check": "system.command", "params": {"command": "true"}}]}))
    return pb, inv


def test_run_hub_defaults_to_the_state_dirs_creds_and_ca(auth_hub: AuthHub,
                                                         tmp_path: Path) -> None:
    auth_hub.add_site("acme")  # remembers the hub's URL and CA; hub.creds is there
    pb, inv = site_playbook(tmp_path)
    res = upkeeper("--state-dir", str(auth_hub.state_dir), "run", str(pb), "-i", str(inv),
                   "--hub", auth_hub.url, "--hub-wait", "2s")
    # No worker runs: the hub connected and the job was left unanswered ("site offline").
    assert "cannot connect" not in res.stderr + res.stdout, res.stderr
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "site offline" in res.stdout + res.stderr


def test_serve_hub_pushes_a_revocation_made_while_the_server_was_away(
        auth_hub: AuthHub, tmp_path: Path) -> None:
    auth_hub.add_site("acme")
    kept = tmp_path / "kept.creds"
    kept.write_bytes(auth_hub.creds("acme").read_bytes())
    auth_hub.server.stop()
    res = upkeeper("--state-dir", str(auth_hub.state_dir), "sites", "revoke", "acme")
    assert res.returncode == 3 and "hub sync" in res.stdout + res.stderr
    auth_hub.server.start()  # from a configuration that does not know the revocation

    async def connects() -> bool:
        try:
            w = await auth_hub.worker("acme", creds=kept)
        except Exception:
            return False
        await w.nc.close()
        return True

    assert run(connects())
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    # Creds and trust given explicitly: only the push at the start is under test here.
    res = upkeeper("--state-dir", str(auth_hub.state_dir), "serve", "--playbooks",
                   str(playbooks), "--hub", auth_hub.url, "--hub-creds",
                   str(auth_hub.hub_creds), "--max-runtime", "1s",
                   env={"SSL_CERT_FILE": str(auth_hub.ca)})
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert not run(connects()), "the revocation did not reach the server at the hub's start"
