"""Parsers against the shared corpus of real outputs (../shared/corpus/backup, if present)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from upkeeper_backup.parsers import parse_restic_snapshots
from upkeeper_backup.wbadmin import parse_wbadmin_versions

UTC = timezone.utc


@pytest.fixture
def backup_corpus(corpus: Path) -> Path:
    path = corpus / "backup"
    if not path.is_dir():
        pytest.skip("no backup corpus")
    return path


def test_every_restic_snapshots_sample_parses(backup_corpus):
    files = sorted(backup_corpus.glob("*restic*snapshots*.json"))
    assert files
    for f in files:
        snaps = parse_restic_snapshots(f.read_text())
        assert snaps, f.name
        assert all(s.time.tzinfo is not None and s.id for s in snaps)


def test_restic_grouped_output(backup_corpus):
    [f] = backup_corpus.glob("*0.16*grouped*.json")
    snaps = parse_restic_snapshots(f.read_text())
    assert len(snaps) == 2 and snaps[1].same_set(snaps[0])


def test_restic_018_summary_gives_size_and_files(backup_corpus):
    [f] = backup_corpus.glob("*0.18.1*latest1*summary*.json")
    [snap] = parse_restic_snapshots(f.read_text())
    assert (snap.size, snap.files) == (1652107, 1)
    assert snap.time == datetime(2026, 2, 7, 9, 51, 35, 579787, tzinfo=UTC)


def test_wbadmin_samples(backup_corpus):
    [share] = backup_corpus.glob("wbadmin*network_share*.txt")
    versions = parse_wbadmin_versions(share.read_text())
    assert [v.time for v in versions] == [datetime(2020, 9, 21, 23, tzinfo=UTC),
                                          datetime(2020, 10, 5, 22, 27, tzinfo=UTC)]
    assert versions[-1].target.startswith("Network Share labeled \\\\10.10.10.192")
    [disk] = backup_corpus.glob("wbadmin*fixed_disk*.txt")
    [v] = parse_wbadmin_versions(disk.read_text())
    assert v.time == datetime(2026, 6, 30, 19, 26, tzinfo=UTC)
    assert v.target == "Fixed Disk labeled F:" and "System State" in v.can_recover
