"""Fixtures for the notify plugin tests: a TLS certificate and loopback servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from upkeeper_notify.testserver import (
    SMTPServer,
    WebhookServer,
    make_cert,
    smtp_server,
    webhook_server,
)


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(cert: tuple[Path, Path]) -> Iterator[SMTPServer]:
    with smtp_server(cert, "starttls") as server:
        yield server


@pytest.fixture
def smtp_ssl(cert: tuple[Path, Path]) -> Iterator[SMTPServer]:
    with smtp_server(cert, "ssl") as server:
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    with webhook_server() as server:
        yield server
