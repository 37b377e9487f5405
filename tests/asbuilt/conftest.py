"""A history database with the as-built tables, per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from upkeeper.asbuilt.snapshots import open_tables
from upkeeper.store.history import History


@pytest.fixture
def hist(tmp_path) -> Iterator[History]:
    h = History(tmp_path / "history.sqlite3")
    open_tables(h)
    yield h
    h.close()
