"""Test restores are judged against the repository's own content, not only live files.

The corruption is real: the real tool restores from a real repository, then a stand-in
for a faulty restore target flips the first byte of every restored file (same size).
"""

from __future__ import annotations

import shutil
from typing import Any

from upkeeper import Status
from upkeeper.testing import run_check
from upkeeper_backup.borg import BorgCheck
from upkeeper_backup.parsers import FileNode
from upkeeper_backup.restic import ResticCheck
from upkeeper_backup.restore import FileState, compare_restore, restore_finding

from .conftest import RecordingTransport, Repo, copy_repo, needs_borg, needs_restic, wrapper

#: Flip byte 0 of every file under DIR (same size, so only a hash can tell).
_FLIP = ("find \"$dir\" -type f -exec sh -c "
         "'printf X | dd of=\"$1\" bs=1 count=1 conv=notrunc 2>/dev/null' sh {} \\;")
RESTIC_CORRUPTS_TARGET = ('[ "$1" = restore ] || exit 0\n'
                          'prev=; for a in "$@"; do case $a in --target=*) '
                          'dir=${a#--target=};; esac; [ "$prev" = --target ] && dir=$a; '
                          'prev=$a; done\n' + _FLIP)
BORG_CORRUPTS_CWD = '[ "$1" = extract ] || exit 0\ndir=.\n' + _FLIP


def change_live(repo: Repo) -> list[str]:
    """Change two live files after the backup: comparing with live proves nothing now."""
    files = [repo.src / "etc" / "hosts", repo.src / "etc" / "motd"]
    for f in files:
        f.write_text(f.read_text() + "changed after the backup\n")
    return [str(f) for f in files]


def restic(repo: Repo, transport: RecordingTransport, **params: Any) -> Any:
    base = {"repository": str(repo.path), "password": repo.secret, "integrity": False}
    [r] = run_check(ResticCheck, {**base, **params}, host=transport.host, transport=transport)
    return r


def borg(repo: Repo, transport: RecordingTransport, **params: Any) -> Any:
    base = {"repository": str(repo.path), "passphrase": repo.secret, "integrity": False,
            "lock_wait": 1}
    [r] = run_check(BorgCheck, {**base, **params}, host=transport.host, transport=transport)
    return r


@needs_restic
def test_restic_restore_of_changed_files_is_checked_against_the_backup(own_restic_repo,
                                                                        transport):
    r = restic(own_restic_repo, transport, restore_sample=change_live(own_restic_repo))
    assert r.status is Status.OK, r.summary
    assert "test restore of 2 files OK (2 match the backup's SHA-256; 0 identical to live, " \
           "2 changed since backup)" in r.summary
    assert {f["backup_record"] for f in r.details["restore"]} == {"sha256 matches"}


@needs_restic
def test_restic_restore_corrupted_on_the_target_is_crit(own_restic_repo, transport, tmp_path):
    sample = change_live(own_restic_repo)
    bad = wrapper(tmp_path / "restic", shutil.which("restic") or "restic",
                  after=RESTIC_CORRUPTS_TARGET)
    r = restic(own_restic_repo, transport, restore_sample=sample, restic_bin=bad)
    assert r.status is Status.CRIT, r.summary
    assert "test restore FAILED" in r.summary
    assert "restored content differs from the SHA-256 recorded in the backup" in r.summary
    assert r.metrics["restore_ok"] == 0


@needs_borg
def test_borg_extract_of_changed_files_is_checked_against_the_backup(own_borg_repo,
                                                                      transport):
    r = borg(own_borg_repo, transport, restore_sample=change_live(own_borg_repo))
    assert r.status is Status.OK, r.summary
    assert "(2 match the backup's SHA-256; 0 identical to live, 2 changed since backup)" \
        in r.summary


@needs_borg
def test_borg_extract_corrupted_on_the_target_is_crit(own_borg_repo, transport, tmp_path):
    sample = change_live(own_borg_repo)
    bad = wrapper(tmp_path / "borg", shutil.which("borg") or "borg", after=BORG_CORRUPTS_CWD)
    r = borg(own_borg_repo, transport, restore_sample=sample, borg_bin=bad)
    assert r.status is Status.CRIT, r.summary
    assert "restored content differs from the SHA-256 recorded in the backup" in r.summary


@needs_borg
def test_borg_archive_paths_that_look_like_options_stay_operands(_borg_empty, tmp_path,
                                                                  transport):
    """An archive made from relative paths can hold "-rf": extract and list get it after
    "--", as a path (before, borg read it as options and the extract failed)."""
    repo = copy_repo(_borg_empty, tmp_path / "repo")
    (tmp_path / "-rf").write_text("not an option\n")
    repo.tool("borg", "create", "::odd-1", "--", "-rf", cwd=tmp_path)
    r = borg(repo, transport, restore_sample=1)
    assert r.status is Status.OK, r.summary
    assert "test restore of 1 file OK (1 matches the backup's SHA-256" in r.summary
    assert [f["path"] for f in r.details["restore"]] == ["-rf"]


def node(path: str, size: int = 5) -> FileNode:
    return FileNode(path, size)


def test_record_mismatch_is_crit_even_when_live_changed():
    rep = compare_restore([node("/a")], [FileState(5, 1, "aa")], [FileState(9, 2, "bb")],
                          {"/a": "cc"})
    finding = restore_finding(rep, 1)
    assert finding.status is Status.CRIT
    assert "/a: restored content differs from the SHA-256 recorded in the backup" in \
        finding.text


def test_a_restore_that_compared_nothing_says_so():
    rep = compare_restore([node("/a"), node("/b")], [FileState(5, 1, "aa")] * 2,
                          [None, FileState(5, 7, "zz")])
    finding = restore_finding(rep, 2)
    assert finding.status is Status.OK
    assert finding.text == ("test restore of 2 files: extracted with the sizes the backup "
                            "records, content not compared (no hash in the backup's record, "
                            "live files changed since backup)")
    checked = compare_restore([node("/a")], [FileState(5, 1, "aa")], [None],
                              tool_checked=True)
    assert restore_finding(checked, 1, "restic restore --verify").text == (
        "test restore of 1 file OK (1 checked against the backup's chunk hashes by restic "
        "restore --verify; 0 identical to live, 1 changed since backup)")
