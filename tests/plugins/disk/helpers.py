"""Shared paths for the disk plugin tests."""

from __future__ import annotations

from pathlib import Path

from tests.corpus import CORPUS

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "disk"
__all__ = ["CORPUS", "DATA", "REPO", "data"]


def data(name: str) -> str:
    return (DATA / name).read_text()
