"""Pure parsers and helpers, tested from captured restic/borg output and wbadmin samples."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upkeeper.measures import format_duration
from upkeeper_backup.common import display_location, judge_shrink, validate_subset
from upkeeper_backup.locks import describe_lock, parse_borg_roster, parse_go_duration
from upkeeper_backup.parsers import (
    FileNode,
    ParseError,
    Snapshot,
    classify_borg_failure,
    classify_restic_failure,
    parse_borg_archives,
    parse_borg_check,
    parse_borg_files,
    parse_borg_repo_size,
    parse_restic_check,
    parse_restic_ls,
    parse_restic_snapshots,
    parse_restic_stats,
    parse_time,
)
from upkeeper_backup.restic import _escape_pattern
from upkeeper_backup.restore import FileState, compare_restore, parse_hash_lines, pick_sample
from upkeeper_backup.wbadmin import parse_wbadmin_versions, wbadmin_message

UTC = timezone.utc


def read(data: Path, name: str) -> str:
    return (data / name).read_text(encoding="utf-8")


def test_parse_time_nanoseconds_offsets_and_naive():
    assert parse_time("2026-11-26T23:19:30.723615302Z") == datetime(
        2026, 11, 26, 23, 19, 30, 723615, tzinfo=UTC)
    assert parse_time("2026-11-26T10:00:00+01:00") == datetime(2026, 11, 26, 9, tzinfo=UTC)
    assert parse_time("2026-11-26T02:00:00.000000").tzinfo is UTC
    with pytest.raises(ParseError):
        parse_time("yesterday")


def test_restic_snapshots_captured(data):
    snaps = parse_restic_snapshots(read(data, "restic-0.14_snapshots.json"))
    assert len(snaps) == 3
    assert snaps == sorted(snaps, key=lambda s: s.time)
    web = [s for s in snaps if s.hostname == "web01.example.com"]
    assert len(web) == 2 and web[1].same_set(web[0])
    assert web[1].tags == ["daily"] and web[1].size is None  # 0.14 has no summary
    assert not snaps[-1].same_set(web[1])
    latest = parse_restic_snapshots(read(data, "restic-0.14_snapshots_latest1_host_tag.json"))
    assert [s.time for s in latest] == [datetime(2026, 11, 26, 2, tzinfo=UTC)]
    assert parse_restic_snapshots(read(data, "restic-0.14_snapshots_empty.json")) == []
    assert parse_restic_snapshots("null") == []


def test_restic_snapshots_rejects_garbage():
    with pytest.raises(ParseError):
        parse_restic_snapshots("Fatal: something")
    with pytest.raises(ParseError):
        parse_restic_snapshots('[{"hostname": "x"}]')


def test_restic_stats_and_ls(data):
    assert parse_restic_stats(read(data, "restic-0.14_stats_snapshot.json")) == (100014, 11)
    size, _ = parse_restic_stats(read(data, "restic-0.14_stats_raw-data.json"))
    assert size > 100000
    files = parse_restic_ls(read(data, "restic-0.14_ls.jsonl"))
    paths = {f.path for f in files}
    assert "/tmp/bkx/cap/src/home/alice/My Docs/n [1].txt" in paths
    assert all(f.mtime is not None for f in files)
    assert {f.size for f in files if f.path.endswith("a.bin")} == {100000}
    assert len(files) == 3  # directories are not sampled


def test_restic_check_ok_and_errors(data):
    assert parse_restic_check(read(data, "restic-0.14_check_ok.txt"), 0).ok
    assert parse_restic_check(read(data, "restic-0.14_check_subset_ok.txt"), 0).ok
    bad = parse_restic_check(read(data, "restic-0.14_check_read-data_corrupt_pack.txt"), 1)
    assert not bad.ok and "Pack ID does not match" in bad.errors[0]
    missing = parse_restic_check(read(data, "restic-0.14_check_missing_pack.txt"), 1)
    assert not missing.ok and missing.errors[0].endswith("does not exist")
    assert len(missing.errors) == 1


def test_restic_check_joins_continuation_lines_and_counts_retries():
    out = ("check snapshots, trees and blobs\nerror for tree cd171844:\n"
           "  decrypting blob cd17 failed: ciphertext verification failed\n"
           "Load(<data/ab>, 0, 0) returned error, retrying after 552ms: EOF\n"
           "Load(<data/ab>, 0, 0) returned error, retrying after 1.1s: EOF\n"
           "Fatal: repository contains errors\n")
    rep = parse_restic_check(out, 1)
    assert rep.errors[0] == ("error for tree cd171844: decrypting blob cd17 failed: "
                             "ciphertext verification failed")
    assert rep.errors[1].startswith("2 reads")


@pytest.mark.parametrize("name,code,kind", [
    ("restic-0.14_wrong_password.stderr.txt", 1, "wrong_password"),
    ("restic-0.14_no_repository.stderr.txt", 1, "no_repository"),
    ("restic-0.14_check_locked.stderr.txt", 1, "locked"),
    ("restic-0.14_snapshots_locked_exclusive.stderr.txt", 1, "locked"),
])
def test_restic_failures_from_old_versions_stderr(data, name, code, kind):
    assert classify_restic_failure(code, read(data, name)).kind == kind


def test_restic_failure_exit_codes_of_new_versions():
    assert classify_restic_failure(10, "Fatal: repository does not exist").kind == "no_repository"
    assert classify_restic_failure(11, "Fatal: unable to create lock").kind == "locked"
    assert classify_restic_failure(12, "Fatal: wrong password").kind == "wrong_password"
    assert classify_restic_failure(127, "sh: 1: restic: not found").kind == "not_installed"
    other = classify_restic_failure(1, "Fatal: unable to open repository: dial tcp: refused")
    assert other.kind == "error" and "dial tcp" in other.message


def test_restic_lock_description(data):
    msg = classify_restic_failure(1, read(data, "restic-0.14_check_locked.stderr.txt")).message
    assert msg == "repository is locked for 2 s by host vm pid 16906 (user root)"
    excl = read(data, "restic-0.14_snapshots_locked_exclusive.stderr.txt")
    assert classify_restic_failure(1, excl).message == (
        "repository is locked for 2 s by host vm pid 17302 (user root, exclusive)")


def test_restic_lock_age_in_human_units_and_unlock_hint_only_when_stale(data):
    text = read(data, "restic-0.14_snapshots_locked_exclusive.stderr.txt")
    live = text.replace("(1.603850595s ago)", "(4m59.2s ago)")
    assert "restic unlock" not in classify_restic_failure(1, live).message
    assert "locked for 4 min by host vm" in classify_restic_failure(1, live).message
    stale = text.replace("(1.603850595s ago)", "(3h12m5.5s ago)")
    msg = classify_restic_failure(1, stale).message
    assert msg.startswith("repository is locked for 3 h 12 min by host vm pid 17302")
    assert "`restic unlock` removes it" in msg


def test_go_durations_and_ages():
    assert parse_go_duration("3h12m5.5s") == timedelta(hours=3, minutes=12, seconds=5.5)
    assert parse_go_duration("250ms") == timedelta(milliseconds=250)
    assert parse_go_duration("soon") is None
    assert [format_duration(timedelta(seconds=s)) for s in (45, 720, 3600, 11520, 190000)] == [
        "45 s", "12 min", "1 h", "3 h 12 min", "2 d 4 h"]


def test_borg_lock_roster():
    info = parse_borg_roster('{"exclusive": [["vm@3281355014145", 23387, 0]]}',
                             1000.0, 1000.0 + 11520)
    assert describe_lock("borg", info) == (
        "repository is locked for 3 h 12 min by host vm pid 23387 (exclusive)")
    old = parse_borg_roster('{"exclusive": [["nas@1", 5, 0]]}', 0.0, 200000.0)
    assert "`borg break-lock` removes it" in describe_lock("borg", old)
    assert parse_borg_roster("not json", None, 0.0) is None


def test_borg_archives_and_info(data):
    archives = parse_borg_archives(read(data, "borg-1.2_list.json"))
    assert [a.name for a in archives] == ["web01-2026-11-25T02:00", "web01 2026-11-26T02:00",
                                          "db02-2026-11-26"]
    assert archives[-1].time == datetime(2026, 11, 26, 3, tzinfo=UTC)
    last = parse_borg_archives(read(data, "borg-1.2_list_last1_glob.json"))
    assert [a.name for a in last] == ["web01 2026-11-26T02:00"]
    assert parse_borg_archives(read(data, "borg-1.2_list_empty.json")) == []
    info = parse_borg_archives(read(data, "borg-1.2_info_last2.json"))
    assert len(info) == 2 and all(a.size and a.files == 3 for a in info)
    assert info[0].hostname
    assert parse_borg_repo_size(read(data, "borg-1.2_info_last2.json"))
    files = parse_borg_files(read(data, "borg-1.2_list_archive.jsonl"))
    assert "tmp/bkx/cap/src/home/alice/My Docs/n [1].txt" in {f.path for f in files}
    assert all(not f.path.startswith("/") for f in files)


def test_borg_check_and_failures(data):
    assert parse_borg_check("", 0).ok
    bad = parse_borg_check(read(data, "borg-1.2_check_corrupt_segment.stderr.jsonl"), 1)
    assert not bad.ok and "checksum mismatch" in bad.errors[0]
    assert not any(e.startswith("ID: ") for e in bad.errors)
    text = parse_borg_check(read(data, "borg-1.2_check_v_corrupt_segment.txt"), 1)
    assert not text.ok and text.errors
    assert classify_borg_failure(
        2, read(data, "borg-1.2_wrong_passphrase.stderr.jsonl")).kind == "wrong_password"
    missing = classify_borg_failure(2, read(data, "borg-1.2_no_repository.stderr.jsonl"))
    assert missing.kind == "no_repository" and "does not exist" in missing.message
    assert classify_borg_failure(2, read(data, "borg-1.2_locked.stderr.jsonl")).kind == "locked"
    assert classify_borg_failure(127, "sh: borg: not found").kind == "not_installed"


@pytest.mark.parametrize("name,count,latest", [
    ("wbadmin_get_versions_en_two.txt", 2, datetime(2026, 11, 26, 5, tzinfo=UTC)),
    ("wbadmin_get_versions_de.txt", 2, datetime(2026, 11, 25, 20, tzinfo=UTC)),
    ("wbadmin_get_versions_fr.txt", 1, datetime(2026, 11, 25, 20, tzinfo=UTC)),
])
def test_wbadmin_versions_in_three_languages(data, name, count, latest):
    versions = parse_wbadmin_versions(read(data, name))
    assert len(versions) == count
    assert versions[-1].time == latest
    assert versions[-1].target and versions[-1].can_recover


def test_wbadmin_target_of_german_network_share(data):
    versions = parse_wbadmin_versions(read(data, "wbadmin_get_versions_de.txt"))
    assert versions[-1].target.endswith("\\\\nas01\\wsb$\\srv-dc01")
    assert versions[0].target.startswith("Feste Festplatte")


def test_wbadmin_no_versions(data):
    text = read(data, "wbadmin_get_versions_none.txt")
    assert parse_wbadmin_versions(text) == []
    assert wbadmin_message(text) == "ERROR - No backup was found."


def test_display_location_hides_url_credentials():
    assert display_location("rest:https://user:pa55@backup.example:8000/repo") == \
        "rest:https://user:***@backup.example:8000/repo"
    assert display_location("/srv/restic") == "/srv/restic"
    assert display_location("ssh://borg@nas/./repo") == "ssh://borg@nas/./repo"


def test_escape_pattern():
    assert _escape_pattern("/a/My Docs/n [1]*?.txt") == "/a/My Docs/n \\[1]\\*\\?.txt"


def test_read_data_subset_validation():
    assert validate_subset(7) == 7
    assert validate_subset("7") == 7
    assert validate_subset("2/5") == "2/5"
    assert validate_subset("10%") == "10%"
    assert validate_subset("2G") == "2G"
    for bad in (0, "1/x", "lots"):
        with pytest.raises(ValueError):
            validate_subset(bad)


def test_shrink_judgement():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    prev = Snapshot("a", t, size=1000, files=100)
    assert judge_shrink(Snapshot("b", t, size=900, files=95), prev, 50) is None
    size_drop = judge_shrink(Snapshot("b", t, size=400, files=95), prev, 50)
    assert size_drop and "-60%" in size_drop.text and "files" not in size_drop.text
    files_drop = judge_shrink(Snapshot("b", t, size=990, files=10), prev, 50)
    assert files_drop and "files 100 -> 10" in files_drop.text
    assert judge_shrink(Snapshot("b", t, size=1, files=1), prev, None) is None
    assert judge_shrink(Snapshot("b", t, size=1, files=1), None, 10) is None


def test_sample_rotates_and_respects_size():
    files = [FileNode(f"/d/f{i}", 10 * (i + 1)) for i in range(50)] + [FileNode("/d/e", 0)]
    a = pick_sample(files, 5, 200, "seed-1")
    b = pick_sample(files, 5, 200, "seed-2")
    assert len(a) == 5 and {f.path for f in a} != {f.path for f in b}
    assert all(0 < f.size <= 200 for f in a + b)
    assert pick_sample(files, 5, 200, "seed-1") == a
    listed = pick_sample(files, ["/d/f3", "d/f4", "/missing"], 1, "x")
    assert [f.size for f in listed] == [40, 50, -1]


def test_compare_restore_outcomes():
    nodes = [FileNode("/ok", 3), FileNode("/changed", 3), FileNode("/rot", 3),
             FileNode("/gone", 3), FileNode("/short", 3)]
    same = FileState(3, 100, "aaa")
    restored = [same, same, same, None, FileState(2, 100, "bbb")]
    live = [same, FileState(4, 200, "ccc"), FileState(3, 100, "zzz"), same, same]
    rep = compare_restore(nodes, restored, live)
    assert rep.verified == 1 and rep.changed == 1
    assert [f.split(":")[0] for f in rep.failures] == ["/rot", "/gone", "/short"]
    assert "differs from the unchanged live file" in rep.failures[0]


def test_hash_lines():
    text = "12 1700000000 abcd\nmissing\n"
    assert parse_hash_lines(text, 3) == [FileState(12, 1700000000, "abcd"), None, None]
