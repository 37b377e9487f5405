"""known_hosts files read the way OpenSSH reads them, one line at a time.

paramiko's own parser gives up on a whole file at the first ``@cert-authority`` or
``@revoked`` line. Here every line stands alone: markers, host patterns (``*``, ``?``,
``!negation``, ``[host]:port``), hashed names (``|1|salt|hash``); a line we cannot use
(unknown key type, bad base64, too few fields) is skipped with one warning naming
``file:line``. Parsed files are cached per file version in a bounded LRU.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from upkeeper_ssh.cache import StampedLRU, file_stamp

log = logging.getLogger("upkeeper.ssh")

REVOKED = "revoked"
CERT_AUTHORITY = "cert-authority"
_MARKERS = {"@revoked": REVOKED, "@cert-authority": CERT_AUTHORITY}


@dataclass(frozen=True)
class Entry:
    """One usable known_hosts line."""

    path: str
    line: int
    names: str
    key: paramiko.PKey = field(compare=False)
    marker: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def hashed(self) -> bool:
        return self.names.startswith("|")

    def matches(self, name: str) -> bool:
        return names_match(self.names, name)


@dataclass
class ParsedFile:
    entries: list[Entry]
    warnings: list[str]


#: Parsed files kept in memory (a serve process sees few known_hosts files).
CACHE_SIZE = 16
_cache: StampedLRU[ParsedFile] = StampedLRU(CACHE_SIZE)


@dataclass(frozen=True)
class _Line:
    marker: str
    names: str
    key_type: str
    blob: str


def _split(raw: str, where: str) -> _Line | str | None:
    """The fields of one line; None for blanks and comments; a reason string if unusable."""
    text = raw.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    marker = ""
    if fields[0].startswith("@"):
        if fields[0] not in _MARKERS:
            return f"{where}: unknown marker {fields[0]!r}; line ignored"
        marker = _MARKERS[fields.pop(0)]
    if len(fields) < 3:
        return (f"{where}: not a known_hosts entry (expected: [@marker] hosts key-type "
                f"base64-key); line ignored")
    return _Line(marker, fields[0], fields[1], fields[2])


def _hashed_parts(names: str) -> tuple[bytes, bytes] | None:
    parts = names.split("|")
    if len(parts) != 4 or parts[1] != "1":
        return None
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return None
    return (salt, digest) if len(digest) == 20 else None


def parse(text: str, path: str) -> ParsedFile:
    """Usable entries and one warning per unusable line of a known_hosts file."""
    entries: list[Entry] = []
    warnings: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        line = _split(raw, where)
        if line is None:
            continue
        if isinstance(line, str):
            warnings.append(line)
            continue
        if line.names.startswith("|") and _hashed_parts(line.names) is None:
            warnings.append(f"{where}: malformed hashed host name; line ignored")
            continue
        try:
            blob = base64.b64decode(line.blob, validate=True)
            key = paramiko.PKey.from_type_string(line.key_type, blob)
        except UnknownKeyType:
            warnings.append(f"{where}: key type {line.key_type!r} is not supported; "
                            f"line ignored")
            continue
        except Exception:
            # paramiko fails on a truncated or mistyped blob in many ways (struct.error,
            # OverflowError, IndexError, SSHException...); the line is reported, not used.
            warnings.append(f"{where}: malformed {line.key_type} key; line ignored")
            continue
        entries.append(Entry(path, lineno, line.names, key, line.marker))
    return ParsedFile(entries, warnings)


def load(path: str) -> ParsedFile | None:
    """One known_hosts file, parsed once per version of the file; None if unreadable.

    Warnings are logged when a version is first parsed, so a long-running ``serve``
    reports a bad line once, and again only after the file changes.
    """
    stamp = file_stamp(path)
    if stamp is None:
        return None
    found = _cache.get(path, stamp)
    if found is not None:
        return found
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("cannot read known_hosts file %s: %s", path, exc.strerror or exc)
        return None
    parsed = parse(text, path)
    for warning in parsed.warnings:
        log.warning("%s", warning)
    _cache.put(path, stamp, parsed)
    return parsed


def entries(files: Sequence[str]) -> Iterator[Entry]:
    """Every usable entry of ``files``, in order."""
    for path in files:
        parsed = load(path)
        if parsed is not None:
            yield from parsed.entries


def for_host(name: str, files: Sequence[str], marker: str = "") -> list[Entry]:
    """Entries with ``marker`` ("" for plain keys) whose host field matches ``name``."""
    return [e for e in entries(files) if e.marker == marker and e.matches(name)]


@functools.lru_cache(maxsize=1024)
def _pattern(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only * and ?; brackets are literal (as in [host]:port).
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.DOTALL)


def pattern_match(pattern: str, name: str) -> bool:
    """One OpenSSH wildcard pattern against a name (both already lower case)."""
    return _pattern(pattern).fullmatch(name) is not None


def names_match(names: str, name: str) -> bool:
    """Whether a known_hosts host field matches ``name`` (OpenSSH's match_hostname)."""
    name = name.lower()
    if names.startswith("|"):
        parts = _hashed_parts(names)
        if parts is None:
            return False
        salt, digest = parts
        return hmac.compare_digest(hmac.new(salt, name.encode(), hashlib.sha1).digest(), digest)
    found = False
    for pattern in names.lower().split(","):
        negated = pattern.startswith("!")
        if pattern_match(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            found = True
    return found


def _names_literally(names: str, name: str) -> bool:
    """The host field names ``name`` itself (hashed or plain), not through a wildcard."""
    if names.startswith("|"):
        return names_match(names, name)
    return name.lower() in names.lower().split(",")


@dataclass
class Forgotten:
    removed: list[int] = field(default_factory=list)
    #: Lines that match only through a wildcard pattern: left for a human to edit.
    kept: list[str] = field(default_factory=list)


def forget(path: Path, name: str) -> Forgotten:
    """Remove every plain entry for ``name`` from ``path`` (hashed ones too).

    ``@cert-authority`` and ``@revoked`` lines are never removed, as ``ssh-keygen -R``
    keeps them. The file is replaced atomically, keeping its mode, with the previous
    version saved as ``<path>.old``.
    """
    result = Forgotten()
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return result
    kept_lines: list[str] = []
    for lineno, raw in enumerate(text.splitlines(keepends=True), 1):
        line = _split(raw, f"{path}:{lineno}")
        if isinstance(line, _Line) and not line.marker:
            if _names_literally(line.names, name):
                result.removed.append(lineno)
                continue
            if names_match(line.names, name):
                result.kept.append(f"{path}:{lineno} matches {name} through the pattern "
                                   f"{line.names!r}; not removed (edit it by hand)")
        kept_lines.append(raw)
    if result.removed:
        _replace(path, text, "".join(kept_lines))
    return result


def _replace(path: Path, old: str, new: str) -> None:
    mode = path.stat().st_mode & 0o777
    backup = path.with_name(path.name + ".old")
    _write_atomically(backup, old, mode)
    _write_atomically(path, new, mode)


def _write_atomically(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
