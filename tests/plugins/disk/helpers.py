"""Shared paths for the disk plugin tests."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "disk"
CORPUS = REPO.parent / "shared" / "corpus"


def data(name: str) -> str:
    return (DATA / name).read_text()
