"""The shared corpus of real command outputs beside the clone (../shared/corpus): one line
says when it is absent and how many tests that read it were not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import CORPUS, CORPUS_DESELECTED

ROOT = Path(__file__).resolve().parent.parent


def test_shared_corpus_is_present(request: pytest.FixtureRequest) -> None:
    if not CORPUS.is_dir():
        gone = request.config.stash.get(CORPUS_DESELECTED, 0)
        pytest.skip(f"{CORPUS} is not present: {gone} tests that read it were not run")
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert {"linux_updates", "windows_updates", "ansible_inventory", "smartctl",
            "disk_usage", "backup", "winrm_soap"} <= folders


def _pytest(corpus: Path, *selection: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           *selection], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "UPKEEPER_TEST_CORPUS": str(corpus)})


@pytest.mark.slow
def test_without_the_corpus_one_skipped_line_says_so_and_a_missing_file_fails(tmp_path):
    absent = _pytest(tmp_path / "absent", "tests/test_shared_corpus.py::"
                     "test_shared_corpus_is_present", "tests/core/test_inventory_corpus.py",
                     "tests/plugins/patching/test_corpus.py",
                     "tests/plugins/disk/test_disk_parsers.py")
    assert absent.returncode == 0, absent.stdout + absent.stderr
    skipped = [line for line in absent.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "tests that read it were not run" in skipped[0], skipped
    m = re.search(r"(\d+) passed, 1 skipped, (\d+) deselected", absent.stdout)
    assert m and int(m.group(2)) >= 20, absent.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    named = _pytest(empty, "tests/plugins/patching/test_corpus.py::test_salt_zypper_updates_xml")
    assert named.returncode == 1 and "1 failed" in named.stdout, named.stdout
    assert "FileNotFoundError" in named.stdout and "SKIPPED" not in named.stdout
