"""The latest result of every (host, check, name), kept beside the results table.

Written in the same transaction as each result insert, so the fleet's current state is
one indexed read instead of a group-by over every result ever stored. An older result
stored late (a site's outbox draining) never replaces a newer one. The runs index serves
"the latest run of this playbook" (schedule periods, ``report --last``).
"""

from __future__ import annotations

import logging
import sqlite3

log = logging.getLogger("upkeeper.history")

SCHEMA = """
CREATE TABLE IF NOT EXISTS current (
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    name TEXT NOT NULL,
    result_id INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (host, check_name, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS runs_playbook_started ON runs(playbook, started);
"""

UPSERT = (
    "INSERT INTO current (host, check_name, name, result_id, run_id, status, summary, ts)"
    " VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(host, check_name, name) DO UPDATE SET"
    " result_id=excluded.result_id, run_id=excluded.run_id, status=excluded.status,"
    " summary=excluded.summary, ts=excluded.ts"
    " WHERE excluded.ts > current.ts OR (excluded.ts = current.ts"
    " AND excluded.result_id > current.result_id)"
)

_BACKFILL = (
    "INSERT OR REPLACE INTO current (host, check_name, name, result_id, run_id, status,"
    " summary, ts) SELECT host, check_name, name, id, run_id, status, summary, ts FROM"
    " (SELECT r.*, ROW_NUMBER() OVER (PARTITION BY host, check_name, name"
    " ORDER BY ts DESC, id DESC) AS n FROM results r) WHERE n = 1"
)


def ensure_current(db: sqlite3.Connection) -> None:
    """Create the table; fill it once from the results of a database that predates it.
    A read-only file of an older database is left as it is (reading it still works;
    only the current state needs the table)."""
    try:
        db.executescript(SCHEMA)
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc).replace(" ", "").lower():
            raise
        log.warning("history is read-only: no current-state table added (%s)", exc)
        return
    if db.execute("SELECT 1 FROM current LIMIT 1").fetchone() is None \
            and db.execute("SELECT 1 FROM results LIMIT 1").fetchone() is not None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(_BACKFILL)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
