"""Pure parsers for restic and borg output (JSON, check logs, error messages)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from upkeeper_backup.locks import describe_lock, parse_restic_lock

_FRACTION_RE = re.compile(r"(\.\d{6})\d+")


class ParseError(ValueError):
    """Output that does not look like what the tool prints."""


def parse_time(text: str) -> datetime:
    """restic/borg timestamps -> aware datetime.

    restic prints nanoseconds and ``Z`` or an offset; borg 1.x prints naive local time,
    which we make UTC by running borg with ``TZ=UTC``.
    """
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    value = _FRACTION_RE.sub(r"\1", value)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ParseError(f"not a timestamp: {text!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def load_json(text: str) -> Any:
    """JSON from a tool's stdout, skipping any stray lines printed before the document."""
    body = text.strip()
    if not body:
        raise ParseError("empty output")
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        starts = [i for i in (body.find("["), body.find("{")) if i >= 0]
        if not starts:
            raise ParseError(f"not JSON: {body[:80]!r}") from None
        try:
            return json.loads(body[min(starts):])
        except json.JSONDecodeError as exc:
            raise ParseError(f"not JSON: {exc}") from exc


def json_lines(text: str) -> list[dict[str, Any]]:
    """Objects from JSON-lines output; lines that are not JSON objects are skipped."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


@dataclass
class Snapshot:
    """A restic snapshot or a borg archive: what freshness and shrinkage are judged on."""

    id: str
    time: datetime
    hostname: str = ""
    paths: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    name: str = ""
    size: int | None = None
    files: int | None = None

    @property
    def short_id(self) -> str:
        return self.name or self.id[:8]

    def same_set(self, other: Snapshot) -> bool:
        """Same host and paths: a comparable earlier run of the same backup."""
        return self.hostname == other.hostname and sorted(self.paths) == sorted(other.paths)


@dataclass
class FileNode:
    """A regular file inside a snapshot (for the sampled test restore)."""

    path: str
    size: int
    mtime: datetime | None = None
    #: SHA-256 of the content as the repository holds it, where it tells
    sha256: str | None = None


def parse_restic_snapshots(text: str) -> list[Snapshot]:
    """``restic snapshots --json`` (flat, ``--group-by`` grouped, or ``null``), oldest first.

    restic >= 0.17 adds ``summary`` whose ``total_bytes_processed`` and
    ``total_files_processed`` give the snapshot's size without ``restic stats``.
    """
    data = load_json(text)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ParseError("restic snapshots --json: expected a list")
    items: list[dict[str, Any]] = []
    for entry in data:
        if isinstance(entry, dict) and "snapshots" in entry and "group_key" in entry:
            items.extend(s for s in entry.get("snapshots") or [] if isinstance(s, dict))
        elif isinstance(entry, dict):
            items.append(entry)
    snaps = []
    for s in items:
        if "time" not in s or "id" not in s:
            raise ParseError("restic snapshot without time or id")
        raw_summary = s.get("summary")
        summary: dict[str, Any] = raw_summary if isinstance(raw_summary, dict) else {}
        snaps.append(Snapshot(
            id=str(s["id"]), time=parse_time(str(s["time"])),
            hostname=str(s.get("hostname") or ""), paths=list(s.get("paths") or []),
            tags=list(s.get("tags") or []),
            size=_int_or_none(summary.get("total_bytes_processed")),
            files=_int_or_none(summary.get("total_files_processed")),
        ))
    snaps.sort(key=lambda s: s.time)
    return snaps


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_restic_stats(text: str) -> tuple[int, int | None]:
    """``restic stats --json``: (total_size, total_file_count)."""
    data = load_json(text)
    if not isinstance(data, dict) or "total_size" not in data:
        raise ParseError("restic stats --json: no total_size")
    return int(data["total_size"]), _int_or_none(data.get("total_file_count"))


def parse_restic_ls(text: str) -> list[FileNode]:
    """Regular files from ``restic ls --json SNAPSHOT`` (JSON lines, snapshot line first)."""
    out = []
    for obj in json_lines(text):
        if obj.get("struct_type", "node") != "node" or obj.get("type") != "file":
            continue
        mtime = parse_time(obj["mtime"]) if obj.get("mtime") else None
        out.append(FileNode(str(obj["path"]), int(obj.get("size") or 0), mtime))
    return out


_RESTIC_CHECK_INFO = re.compile(
    r"^(using temporary cache|create (exclusive )?lock|load indexes|check all packs|"
    r"check snapshots|no errors were found|read all data|read group #|read \S+ of data packs|"
    r"\[\d+:\d+\]|Fatal: repository contains errors|check did not find any errors|"
    r"created new cache|scheduled|will read|\d+ additional files were found|"
    r"the repository|cache dir|[\d/]+ snapshots|there were no)", re.IGNORECASE)


@dataclass
class IntegrityReport:
    """Outcome of ``restic check`` / ``borg check``."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)


def parse_restic_check(output: str, exit_code: int) -> IntegrityReport:
    """``restic check`` output (stdout and stderr together) and exit code."""
    errors: list[str] = []
    retries = 0
    for raw in output.splitlines():
        line = raw.strip()
        if not line or _RESTIC_CHECK_INFO.match(line):
            continue
        if raw[:1].isspace() and errors and errors[-1].endswith(":"):
            errors[-1] = f"{errors[-1]} {line}"
            continue
        if "returned error, retrying" in line:
            retries += 1
            continue
        errors.append(line)
    if retries:
        errors.append(f"{retries} reads from the backend failed and were retried")
    if exit_code == 0:
        return IntegrityReport(ok=True)
    hints = [e for e in errors if "restic repair" in e or "rebuild-index" in e]
    errors = [e for e in errors if e not in hints] or [f"restic check exited {exit_code}"]
    return IntegrityReport(ok=False, errors=errors[:20], hints=hints)


@dataclass
class ToolFailure:
    """Why a restic/borg command failed, in words an engineer can act on."""

    kind: str
    message: str


def classify_restic_failure(exit_code: int, stderr: str) -> ToolFailure:
    """Map restic's exit code (>= 0.17: 10 no repo, 11 locked, 12 wrong password) or,
    for older versions, its stderr text to a failure kind."""
    text = stderr.strip()
    low = text.lower()
    if exit_code == 127 or "restic: not found" in low or "command not found" in low:
        return ToolFailure("not_installed", "restic is not installed (or not in PATH)")
    if exit_code == 12 or "wrong password" in low:
        return ToolFailure("wrong_password", "wrong repository password (or no key found)")
    if exit_code == 10 or "is there a repository at the following location" in low or (
            "repository does not exist" in low):
        return ToolFailure("no_repository", "no restic repository at this location")
    if exit_code == 11 or "already locked" in low or "unable to create lock" in low:
        return ToolFailure("locked", describe_lock("restic", parse_restic_lock(text)))
    if "resolving password failed" in low or "empty password" in low or (
            "reading repository password" in low):
        return ToolFailure("no_password", f"restic could not get a password: {_last_line(text)}")
    if exit_code == 130:
        return ToolFailure("interrupted", "restic was interrupted")
    return ToolFailure("error", _last_line(text) or f"restic exited {exit_code}")


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith("Fatal:")]
    return (fatal[-1] if fatal else lines[-1] if lines else "")[:300]


def parse_borg_archives(text: str) -> list[Snapshot]:
    """``borg list --json`` / ``borg info --json`` archives, oldest first (UTC via TZ=UTC)."""
    data = load_json(text)
    if not isinstance(data, dict) or not isinstance(data.get("archives"), list):
        raise ParseError("borg --json: no archives list")
    out = []
    for a in data["archives"]:
        when = a.get("start") or a.get("time")
        if not when:
            raise ParseError("borg archive without a time")
        stats = a.get("stats") if isinstance(a.get("stats"), dict) else {}
        out.append(Snapshot(
            id=str(a.get("id") or ""), time=parse_time(str(when)),
            hostname=str(a.get("hostname") or ""), name=str(a.get("name") or a.get("archive")),
            size=_int_or_none(stats.get("original_size")),
            files=_int_or_none(stats.get("nfiles")),
        ))
    out.sort(key=lambda s: s.time)
    return out


def parse_borg_repo_size(text: str) -> int | None:
    """Deduplicated, compressed repository size from ``borg info --json`` cache stats."""
    data = load_json(text)
    stats = (data.get("cache") or {}).get("stats") if isinstance(data, dict) else None
    return _int_or_none(stats.get("unique_csize")) if isinstance(stats, dict) else None


def parse_borg_files(text: str) -> list[FileNode]:
    """Regular files from ``borg list --json-lines ::ARCHIVE`` (paths have no leading /);
    with ``--format {sha256}`` each also carries the SHA-256 borg computes from its chunks."""
    out = []
    for obj in json_lines(text):
        if obj.get("type") != "-":
            continue
        mtime = parse_time(obj["mtime"]) if obj.get("mtime") else None
        digest = obj.get("sha256")
        out.append(FileNode(str(obj["path"]), int(obj.get("size") or 0), mtime,
                            digest if isinstance(digest, str) and digest else None))
    return out


def borg_log(stderr: str) -> list[dict[str, Any]]:
    """``--log-json`` records; plain text lines become records with levelname TEXT."""
    out: list[dict[str, Any]] = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        obj: Any = None
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                obj = None
        if isinstance(obj, dict):
            out.append(obj)
        else:
            out.append({"type": "text", "levelname": "TEXT", "message": line})
    return out


_BORG_NO_REPO = {"Repository.DoesNotExist", "Repository.InvalidRepository",
                 "Repository.InsufficientFreeSpaceError"}
_BORG_LOCKED = {"LockTimeout", "LockFailed", "LockError", "LockErrorT", "NotLocked"}


def classify_borg_failure(exit_code: int, stderr: str) -> ToolFailure:
    """Map a failed borg command (``--log-json`` msgids, else text) to a failure kind."""
    records = borg_log(stderr)
    msgids = {str(r.get("msgid")) for r in records if r.get("msgid")}
    errors = [str(r.get("message", "")) for r in records
              if r.get("levelname") in ("ERROR", "CRITICAL", "TEXT")
              and "Traceback" not in str(r.get("message", ""))]
    first = (errors[0] if errors else stderr.strip()[:300]).splitlines()
    text = first[0] if first else f"borg exited {exit_code}"
    low = stderr.lower()
    if exit_code == 127 or "borg: not found" in low or "command not found" in low:
        return ToolFailure("not_installed", "borg is not installed (or not in PATH)")
    if "PassphraseWrong" in msgids or ("passphrase supplied" in low and "incorrect" in low):
        return ToolFailure("wrong_password", "wrong repository passphrase")
    if msgids & _BORG_NO_REPO or ("does not exist" in low and "repository" in low) or (
            "is not a valid repository" in low):
        return ToolFailure("no_repository", text)
    if msgids & _BORG_LOCKED or "failed to create/acquire the lock" in low:
        return ToolFailure("locked", f"repository is locked (backup or prune running?): {text}")
    if "NoPassphraseFailure" in msgids or "enter passphrase" in low:
        return ToolFailure("no_password", "borg asked for a passphrase: set passphrase "
                                          "or passcommand")
    return ToolFailure("error", text)


def parse_borg_check(stderr: str, exit_code: int) -> IntegrityReport:
    """``borg check --log-json`` stderr and exit code (0 ok, 1 problems found, 2 error)."""
    errors = []
    for r in borg_log(stderr):
        level = r.get("levelname")
        msg = str(r.get("message", "")).strip()
        serious = level in ("ERROR", "CRITICAL") or (level == "TEXT" and re.search(
            r"error|mismatch|missing|corrupt", msg, re.IGNORECASE) is not None)
        if serious and "Traceback" not in msg and not msg.startswith("ID: "):
            errors.append(msg.splitlines()[0] if msg else msg)
    if exit_code == 0:
        return IntegrityReport(ok=True)
    errors = errors or [f"borg check exited {exit_code}"]
    hints = ["read the borg docs on 'borg check --repair' before repairing"]
    return IntegrityReport(ok=False, errors=errors[:20], hints=hints)
