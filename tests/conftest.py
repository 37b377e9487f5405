"""Shared fixtures: every test gets its own state dir so history never leaks."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


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


@pytest.fixture
def corpus() -> Path:
    """The shared real-world corpus beside the repo; skips when it is absent."""
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return CORPUS


@pytest.fixture
def upkeeper_cmd() -> list[str]:
    """argv prefix that runs the installed CLI with this interpreter."""
    return [sys.executable, "-m", "upkeeper"]


# The upkeeper pytest plugin's fixtures are prefixed (upkeeper_*); our own suite keeps the
# short names it has always used.
@pytest.fixture
def fake_transport(upkeeper_fake_transport):
    return upkeeper_fake_transport


@pytest.fixture
def history(upkeeper_history):
    return upkeeper_history
