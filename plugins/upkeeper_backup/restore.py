"""Sampled test restores: pick files, restore into a private temp dir, and judge what came
back against the backup's own record (size, SHA-256) and against unchanged live files."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upkeeper import CheckContext, Status
from upkeeper_backup.common import Finding
from upkeeper_backup.parsers import FileNode

_TEMP_PREFIX = "upkeeper-restore."


@dataclass
class FileState:
    size: int
    mtime: int
    sha256: str


_HASH_SCRIPT = (
    'for f in "$@"; do if [ -f "$f" ] && [ -r "$f" ]; then '
    "printf '%s %s\\n' \"$(stat -L -c '%s %Y' -- \"$f\")\" "
    "\"$(sha256sum < \"$f\" | cut -d' ' -f1)\"; else echo missing; fi; done"
)


def stat_and_hash(ctx: CheckContext[Any], paths: Sequence[str], sudo: bool,
                  ) -> list[FileState | None]:
    """Size, mtime (s) and SHA-256 of each file on the host; None where it is missing."""
    if not paths:
        return []
    res = ctx.run(["sh", "-c", _HASH_SCRIPT, "sh", *paths], sudo=sudo).check_ok("hashing files")
    return parse_hash_lines(res.stdout, len(paths))


def parse_hash_lines(text: str, count: int) -> list[FileState | None]:
    out: list[FileState | None] = []
    for line in text.splitlines()[:count]:
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
            out.append(FileState(int(parts[0]), int(parts[1]), parts[2]))
        else:
            out.append(None)
    out.extend([None] * (count - len(out)))
    return out


def make_tempdir(ctx: CheckContext[Any], sudo: bool) -> str:
    res = ctx.run(["mktemp", "-d", "-t", _TEMP_PREFIX + "XXXXXXXX"], sudo=sudo)
    res.check_ok("creating a temporary directory for the test restore")
    path = res.stdout.strip()
    if not _is_our_tempdir(path):
        raise RuntimeError(f"mktemp returned an unexpected path: {path!r}")
    return path


def remove_tempdir(ctx: CheckContext[Any], path: str, sudo: bool) -> None:
    # Guard against ever removing anything but the directory mktemp made for us.
    if _is_our_tempdir(path):
        ctx.run(["rm", "-rf", "--", path], sudo=sudo, timeout=300)


def _is_our_tempdir(path: str) -> bool:
    return (path.startswith("/") and "\n" not in path and ".." not in path
            and path.rstrip("/").rsplit("/", 1)[-1].startswith(_TEMP_PREFIX))


def pick_sample(files: Sequence[FileNode], wanted: int | list[str], max_size: int,
                seed: str) -> list[FileNode]:
    """Files to restore: the listed paths, or ``wanted`` random non-empty files up to
    ``max_size`` (the seed changes per run so the sample rotates)."""
    if isinstance(wanted, list):
        by_path = {f.path.lstrip("/"): f for f in files}
        return [by_path.get(w.lstrip("/"), FileNode(w, -1)) for w in wanted]
    pool = [f for f in files if 0 < f.size <= max_size]
    rng = random.Random(seed)
    return rng.sample(pool, min(wanted, len(pool)))


@dataclass
class RestoreReport:
    """What the restored files were compared with, and what failed."""

    #: identical to a live file unchanged since the backup
    verified: int = 0
    #: live file changed since the backup (not comparable with it)
    changed: int = 0
    #: content matches the SHA-256 the repository holds for the file
    recorded: int = 0
    #: content checked by the tool itself against its chunk hashes (restic --verify)
    tool_checked: int = 0
    failures: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


def compare_restore(sample: Sequence[FileNode], restored: Sequence[FileState | None],
                    live: Sequence[FileState | None],
                    recorded: Mapping[str, str] | None = None,
                    tool_checked: bool = False) -> RestoreReport:
    """Judge restored files: present with the size the backup records, content equal to
    the SHA-256 the backup records (``recorded``, by path) where it records one, and
    identical to the live file wherever that is unchanged since the backup (same size
    and mtime). ``tool_checked``: the tool verified chunk hashes of what it restored."""
    rep = RestoreReport()
    recorded = recorded or {}
    for node, got, now in zip(sample, restored, live, strict=True):
        entry: dict[str, Any] = {"path": node.path, "size": node.size}
        rep.files.append(entry)
        want = recorded.get(node.path)
        if node.size < 0:
            rep.failures.append(f"{node.path}: not in the backup")
            entry["result"] = "not in backup"
            continue
        if got is None:
            rep.failures.append(f"{node.path}: not restored")
            entry["result"] = "not restored"
            continue
        if got.size != node.size:
            rep.failures.append(f"{node.path}: restored {got.size} bytes, backup says "
                                f"{node.size}")
            entry["result"] = "size mismatch"
            continue
        if want is not None and want.lower() != got.sha256.lower():
            rep.failures.append(f"{node.path}: restored content differs from the SHA-256 "
                                "recorded in the backup")
            entry["result"] = "differs from backup record"
            continue
        if want is not None:
            rep.recorded += 1
            entry["backup_record"] = "sha256 matches"
        elif tool_checked:
            rep.tool_checked += 1
            entry["backup_record"] = "chunk hashes checked by the tool"
        else:
            entry["backup_record"] = "size only"
        if now is None or now.size != got.size or now.mtime != got.mtime:
            rep.changed += 1
            entry["result"] = "live file changed since backup (restore not compared)"
        elif now.sha256 != got.sha256:
            rep.failures.append(f"{node.path}: restored content differs from the unchanged "
                                "live file")
            entry["result"] = "content mismatch"
        else:
            rep.verified += 1
            entry["result"] = "identical"
    return rep


def restore_finding(rep: RestoreReport, sampled: int, tool_check: str = "") -> Finding:
    """The verdict, saying what the restored content was compared with: a restore whose
    content nothing vouches for proves only that extraction works, and says so."""
    if rep.failures:
        more = f" (+{len(rep.failures) - 1} more)" if len(rep.failures) > 1 else ""
        return Finding(Status.CRIT, f"test restore FAILED: {rep.failures[0]}{more}")
    files = f"{sampled} file{'s' if sampled != 1 else ''}"
    if rep.recorded + rep.tool_checked + rep.verified == 0:
        return Finding(Status.OK, f"test restore of {files}: extracted with the sizes the "
                                  "backup records, content not compared (no hash in the "
                                  "backup's record, live files changed since backup)")
    against = []
    if rep.recorded:
        verb = "matches" if rep.recorded == 1 else "match"
        against.append(f"{rep.recorded} {verb} the backup's SHA-256")
    if rep.tool_checked:
        against.append(f"{rep.tool_checked} checked against the backup's chunk hashes"
                       f"{' by ' + tool_check if tool_check else ''}")
    if rep.changed:
        against.append(f"{rep.verified} identical to live, {rep.changed} changed since backup")
    elif rep.verified:
        against.append(f"{rep.verified} identical to live")
    return Finding(Status.OK, f"test restore of {files} OK ({'; '.join(against)})")
