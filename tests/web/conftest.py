"""Dashboard fixtures: a history with a small fleet, the app, and users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from tests.web.fleetdata import fill
from upkeeper.store.history import History
from upkeeper.web.app import create_app
from upkeeper.web.site import WebConfig

#: Argon2 at its cheapest, for creating test users quickly (a hash carries its own
#: parameters, so the dashboard verifies it as it would any other).
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def fleet_history(tmp_path: Path) -> Iterator[History]:
    history = History(tmp_path / "history.sqlite3")
    fill(history)
    yield history
    history.close()


@pytest.fixture
def config() -> WebConfig:
    return WebConfig(hasher=FAST_HASHER)


@pytest.fixture
def client(fleet_history: History, config: WebConfig) -> Iterator[TestClient]:
    """A client of the dashboard as served on 127.0.0.1 (Host header included)."""
    with TestClient(create_app(fleet_history, config), base_url="http://127.0.0.1:8470",
                    follow_redirects=False) as c:
        yield c
