"""The pytest plugin upkeeper installs (entry point ``pytest11``): fixtures for plugin tests.

Every fixture name starts with ``upkeeper_`` so it never shadows a fixture of the project
under test: ``upkeeper_fake_transport``, ``upkeeper_history``, ``upkeeper_clock``,
``upkeeper_notifier``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from upkeeper.store.history import History
from upkeeper.testing.fakes import FakeClock, FakeNotifier, FakeTransport


@pytest.fixture
def upkeeper_fake_transport() -> Iterator[FakeTransport]:
    """A strict :class:`FakeTransport` on a Debian test host; add answers with ``.add``."""
    yield FakeTransport()


@pytest.fixture
def upkeeper_history() -> Iterator[History]:
    """An in-memory history database."""
    h = History(":memory:")
    yield h
    h.close()


@pytest.fixture
def upkeeper_clock() -> FakeClock:
    """A :class:`FakeClock` at 2026-01-05 12:00 UTC."""
    return FakeClock()


@pytest.fixture
def upkeeper_notifier() -> Iterator[type[FakeNotifier]]:
    """The :class:`FakeNotifier` class, emptied before and after the test."""
    FakeNotifier.reset()
    yield FakeNotifier
    FakeNotifier.reset()
