"""Is the history database sound? ``PRAGMA quick_check`` (or the slower
``integrity_check``) as a list of problems (``upkeeper history check``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from upkeeper.store.errors import HistoryError, HistoryMissing

#: Problems listed at most (a badly damaged file can report thousands).
MAX_PROBLEMS = 20


def check_database(path: str | Path, full: bool = False) -> list[str]:
    """Problems SQLite finds in the file (empty: sound). Opens it read-only: a damaged
    file is never written to here.

    :raises HistoryMissing: there is no such file.
    :raises HistoryError: it cannot be opened at all (permissions).
    """
    path = Path(path)
    if not path.is_file():
        raise HistoryMissing(f"no history database at {path}")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise HistoryError(f"cannot open the history database {path}: {exc}") from exc
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = db.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        # Damage in the header or schema pages stops the check itself.
        return [str(exc)]
    finally:
        db.close()
    problems = [str(r[0]) for r in rows]
    return [] if problems == ["ok"] else problems
