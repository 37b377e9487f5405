"""Shared fixtures: every test gets its own state dir so history never leaks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.corpus import CORPUS, CORPUS_DESELECTED, needs_corpus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("UPKEEPER_STATE_DIR", str(state))
    yield state


@pytest.fixture
def state_dir(_isolated_state: Path) -> Path:
    """The UPKEEPER_STATE_DIR of this test (history lives here)."""
    return _isolated_state


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Without the corpus its tests are not run, and tests/test_shared_corpus.py says so on
    # one SKIPPED line with their number, instead of each skipping (or, parametrized from
    # the corpus, vanishing) on its own.
    if CORPUS.is_dir():
        return
    gone = [item for item in items if needs_corpus(item)]
    if gone:
        config.hook.pytest_deselected(items=gone)
        items[:] = [item for item in items if not needs_corpus(item)]
    config.stash[CORPUS_DESELECTED] = len(gone)


@pytest.fixture
def corpus() -> Path:
    """The shared real-world corpus beside the repo (../shared/corpus).

    A file a test names that the corpus lacks is a failure (reading it raises), not a skip.
    """
    return CORPUS


@pytest.fixture
def upkeeper_cmd() -> list[str]:
    """argv prefix that runs the installed CLI with this interpreter."""
    return [sys.executable, "-m", "upkeeper"]
