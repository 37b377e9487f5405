"""Keeping history bounded: delete what is older than the retention, then give the space
back to the file system (``upkeeper history prune`` and ``serve --retention``).

Deletes run in small transactions so a daemon's own writes interleave with them; rows a
run still needs (its slot while queued or running) are never deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

from upkeeper.store.errors import HistoryError, history_error
from upkeeper.store.history import History

log = logging.getLogger("upkeeper.history")

#: Results deleted per transaction (with their metrics).
BATCH = 2000
#: Reclaim space when at least this share of the file is free pages ...
RECLAIM_SHARE = 0.2
#: ... and at least this many bytes would come back.
RECLAIM_MIN_BYTES = 1 << 20


@dataclass
class PruneReport:
    """What a prune removed and how much space came back."""

    results: int = 0
    metrics: int = 0
    runs: int = 0
    slots: int = 0
    daemons: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    reclaimed: str = "not needed"
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        freed = max(0, self.bytes_before - self.bytes_after)
        return (f"deleted {self.runs} run(s), {self.results} result(s), {self.metrics}"
                f" metric value(s), {self.slots} slot record(s); space: {self.reclaimed},"
                f" {_size(freed)} freed ({_size(self.bytes_after)} now)")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def file_bytes(history: History) -> int:
    """The database's size on disk, write-ahead log included."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):  # no WAL file: nothing to add
            total += os.path.getsize(history.path + suffix)
    return total


def _has_table(history: History, name: str) -> bool:
    return bool(history.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                              (name,)))


def count_older(history: History, before: datetime) -> PruneReport:
    """What :func:`prune` would delete (``--dry-run``)."""
    cut = before.timestamp()
    rep = PruneReport(bytes_before=file_bytes(history))
    rep.results = history.query("SELECT COUNT(*) FROM results WHERE ts<?", (cut,))[0][0]
    rep.metrics = history.query("SELECT COUNT(*) FROM metrics WHERE result_id IN"
                                " (SELECT id FROM results WHERE ts<?)", (cut,))[0][0]
    rep.runs = history.query(
        "SELECT COUNT(*) FROM runs WHERE started<? AND NOT EXISTS (SELECT 1 FROM results"
        " WHERE results.run_id=runs.id AND results.ts>=?)", (cut, cut))[0][0]
    if _has_table(history, "schedule_slots"):
        rep.slots = history.query("SELECT COUNT(*) FROM schedule_slots WHERE recorded<? AND"
                                  " state NOT IN ('queued','running')", (cut,))[0][0]
    rep.bytes_after = rep.bytes_before
    rep.reclaimed = "dry run"
    return rep


def prune(history: History, before: datetime, *, reclaim: bool = True) -> PruneReport:
    """Delete results, metrics, slot records and then-empty runs older than ``before``;
    with ``reclaim``, return the freed pages to the file system when worthwhile.

    :raises HistoryError: a delete failed (what was deleted before stays deleted).
    """
    cut = before.timestamp()
    rep = PruneReport(bytes_before=file_bytes(history))
    while True:
        with history.transaction() as db:
            ids = [r[0] for r in db.execute("SELECT id FROM results WHERE ts<? LIMIT ?",
                                            (cut, BATCH))]
            if not ids:
                break
            marks = ",".join("?" * len(ids))
            rep.metrics += db.execute(f"DELETE FROM metrics WHERE result_id IN ({marks})",
                                      ids).rowcount
            rep.results += db.execute(f"DELETE FROM results WHERE id IN ({marks})",
                                      ids).rowcount
            # A check whose latest result is this old leaves the current state too.
            db.execute(f"DELETE FROM current WHERE result_id IN ({marks})", ids)
    with history.transaction() as db:
        rep.runs = db.execute("DELETE FROM runs WHERE started<? AND NOT EXISTS (SELECT 1"
                              " FROM results WHERE results.run_id=runs.id)", (cut,)).rowcount
    if _has_table(history, "schedule_slots"):
        with history.transaction() as db:
            rep.slots = db.execute("DELETE FROM schedule_slots WHERE recorded<? AND state"
                                   " NOT IN ('queued','running')", (cut,)).rowcount
            rep.daemons = db.execute("DELETE FROM schedule_daemons WHERE stopped IS NOT NULL"
                                     " AND stopped<?", (cut,)).rowcount
    if reclaim:
        try:
            rep.reclaimed = reclaim_space(history)
        except HistoryError as exc:  # the rows are gone; the space comes back next time
            rep.reclaimed = "not reclaimed"
            rep.problems.append(str(exc))
    rep.bytes_after = file_bytes(history)
    return rep


def reclaim_space(history: History, force: bool = False) -> str:
    """Give free pages back: ``incremental_vacuum`` when the file was created for it,
    else one ``VACUUM`` (which also switches the file to incremental) when at least
    ``RECLAIM_SHARE`` of it and ``RECLAIM_MIN_BYTES`` are free. Says what it did."""
    (free,) = history.query("PRAGMA freelist_count")[0]
    (pages,) = history.query("PRAGMA page_count")[0]
    (page_size,) = history.query("PRAGMA page_size")[0]
    (mode,) = history.query("PRAGMA auto_vacuum")[0]
    worthwhile = free * page_size >= RECLAIM_MIN_BYTES and free >= RECLAIM_SHARE * pages
    with history._lock:  # VACUUM and pragmas below run outside any transaction
        db = history._db
        try:
            if mode == 2 and free:
                # execute() would step once (one page); executescript steps to the end.
                db.executescript("PRAGMA incremental_vacuum;")
                done = f"{free} free page(s) returned (incremental vacuum)"
            elif free and (worthwhile or force):
                db.execute("PRAGMA auto_vacuum=INCREMENTAL")
                db.execute("VACUUM")
                done = "file rebuilt (VACUUM)"
            else:
                return "not needed"
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        except sqlite3.Error as exc:
            raise history_error(exc, history.path, "reclaim space in") from exc
    log.info("history %s: %s", history.path, done)
    return done
