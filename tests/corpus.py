"""Where the shared corpus of real command outputs lives (../shared/corpus, beside the
clone) and which tests read it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

#: ``UPKEEPER_TEST_CORPUS`` points the tests elsewhere (the tests of this very handling do).
CORPUS = Path(os.environ.get("UPKEEPER_TEST_CORPUS")
              or Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")

#: Where the collection hook leaves the number of corpus tests it did not run.
CORPUS_DESELECTED = pytest.StashKey[int]()


def needs_corpus(item: pytest.Item) -> bool:
    """Tests that read the corpus: they take the ``corpus`` fixture or carry the ``corpus``
    mark (those whose parameters come from the corpus at collection time)."""
    return "corpus" in getattr(item, "fixturenames", ()) or item.get_closest_marker(
        "corpus") is not None
