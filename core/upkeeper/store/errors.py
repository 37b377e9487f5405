"""What can go wrong with the history database, as one clear sentence each.

SQLite reports a damaged file, a full disk and a read-only directory as different
``sqlite3.DatabaseError`` s; :func:`history_error` turns them into :class:`HistoryError`
whose message names the file, says what happened and what to do.
"""

from __future__ import annotations

import os
import sqlite3

#: Where the recovery steps are documented (named in messages about a damaged file).
RECOVERY_DOC = "docs/scheduling.md, 'A damaged history database'"


class HistoryError(Exception):
    """The history database cannot be used (the message says where, why and what to do)."""


class HistoryMissing(HistoryError):
    """A command that only reads found no history database (and created none)."""


class HistoryDamaged(HistoryError):
    """The file is not a database or its pages are damaged."""


class HistoryUnwritable(HistoryError):
    """A write failed: disk full, read-only file system or directory, I/O error."""


def _code(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name
    text = str(exc).lower()
    for needle, code in (("malformed", "SQLITE_CORRUPT"), ("not a database", "SQLITE_NOTADB"),
                         ("disk is full", "SQLITE_FULL"), ("readonly", "SQLITE_READONLY"),
                         ("read-only", "SQLITE_READONLY"), ("disk i/o", "SQLITE_IOERR"),
                         ("unable to open", "SQLITE_CANTOPEN"), ("locked", "SQLITE_BUSY")):
        if needle in text:
            return code
    return "SQLITE_ERROR"


def _no_space(path: str) -> bool:
    import shutil  # only on a failed write: shutil is not cheap to import

    try:
        return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free == 0
    except OSError:
        return False


def _read_only_dir(path: str) -> bool:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY) or not os.access(
            directory, os.W_OK)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def history_error(exc: BaseException, path: str, doing: str = "use") -> HistoryError:
    """A :class:`HistoryError` for ``exc`` (an ``sqlite3.Error`` or ``OSError``)."""
    if isinstance(exc, HistoryError):
        return exc
    reason = str(exc) or type(exc).__name__
    code = _code(exc) if isinstance(exc, sqlite3.Error) else ""
    if code.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
        # SQLite says "I/O error" or "unable to open" when it cannot create its -shm file.
        if _no_space(path):
            code = "SQLITE_FULL"
        elif os.path.exists(path) and _read_only_dir(path):
            code = "SQLITE_READONLY"
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return HistoryDamaged(
            f"the history database {path} is damaged ({reason}): check it with"
            f" 'upkeeper history check', recover or move it aside as {RECOVERY_DOC} says")
    if code == "SQLITE_FULL" or (isinstance(exc, OSError) and exc.errno == 28):
        return HistoryUnwritable(f"cannot {doing} the history database {path}: the disk is"
                                 f" full ({reason}); free space or prune old history"
                                 " ('upkeeper history prune --older-than 400d')")
    if code.startswith("SQLITE_READONLY") or (isinstance(exc, OSError) and exc.errno == 30):
        return HistoryUnwritable(f"cannot {doing} the history database {path}: it or its"
                                 f" directory is read-only ({reason})")
    if code.startswith("SQLITE_IOERR"):
        return HistoryUnwritable(f"cannot {doing} the history database {path}: I/O error"
                                 f" ({reason}); the disk may be full or failing")
    if code.startswith("SQLITE_BUSY"):
        return HistoryError(f"the history database {path} stayed locked by another process"
                            f" ({reason})")
    return HistoryError(f"cannot {doing} the history database {path}: {reason}")
