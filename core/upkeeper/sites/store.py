"""The hub's own tables in the history database: jobs published and what became of them,
workers last seen (liveness) and dead letters. Created on first use (not in the core
schema), indexed for the per-site overview."""

from __future__ import annotations

import time
from collections.abc import Iterable

from upkeeper.store.history import History

SCHEMA = """
CREATE TABLE IF NOT EXISTS site_jobs (
    job_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, site TEXT NOT NULL, host TEXT NOT NULL,
    published REAL NOT NULL, deadline REAL NOT NULL, state TEXT NOT NULL,
    token INTEGER, worker TEXT, finished REAL);
CREATE INDEX IF NOT EXISTS site_jobs_site_state ON site_jobs (site, state, published);
CREATE TABLE IF NOT EXISTS site_workers (
    site TEXT NOT NULL, worker TEXT NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, PRIMARY KEY (site, worker));
CREATE TABLE IF NOT EXISTS site_dead_letters (
    id INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, site TEXT NOT NULL,
    host TEXT NOT NULL, run_id TEXT NOT NULL, deliveries INTEGER NOT NULL, ts REAL NOT NULL);
"""
QUEUED, DONE, EXPIRED, DEAD = "queued", "done", "expired", "dead"


def ensure_tables(history: History) -> None:
    with history.transaction() as db:
        for statement in filter(None, (s.strip() for s in SCHEMA.split(";"))):
            db.execute(statement)


def record_published(history: History, rows: Iterable[tuple[str, str, str, str, float]]
                     ) -> None:
    """(job_id, run_id, site, host, deadline) of jobs just published."""
    now = time.time()
    with history.transaction() as db:
        db.executemany(
            "INSERT OR IGNORE INTO site_jobs (job_id, run_id, site, host, published,"
            " deadline, state) VALUES (?,?,?,?,?,?,?)",
            [(j, r, s, h, now, d, QUEUED) for j, r, s, h, d in rows])


def finish_job(history: History, job_id: str, site: str, state: str,
               token: int | None = None, worker: str | None = None) -> bool:
    """Mark a queued job of ``site`` finished; False when it was finished already (the
    first result won, this one is dropped) or is not that site's. Call inside the batch
    that stores its results."""
    with history.transaction() as db:
        cur = db.execute(
            "UPDATE site_jobs SET state=?, token=?, worker=?, finished=?"
            " WHERE job_id=? AND site=? AND state=?",
            (state, token, worker, time.time(), job_id, site, QUEUED))
        return cur.rowcount > 0


def saw_workers(history: History, beats: Iterable[tuple[str, str, float]]) -> None:
    with history.transaction() as db:
        db.executemany(
            "INSERT INTO site_workers (site, worker, first_seen, last_seen) VALUES (?,?,?,?)"
            " ON CONFLICT(site, worker) DO UPDATE SET"
            " last_seen=max(last_seen, excluded.last_seen)",
            [(s, w, t, t) for s, w, t in beats])


def dead_letter(history: History, job_id: str, deliveries: int) -> tuple[str, str, str] | None:
    """Record a job that failed ``max_deliver`` times, once: its (site, host, run_id), or
    None when it was recorded already or is unknown."""
    with history.transaction() as db:
        row = db.execute("SELECT site, host, run_id FROM site_jobs WHERE job_id=?",
                         (job_id,)).fetchone()
        if row is None:
            return None
        cur = db.execute(
            "INSERT OR IGNORE INTO site_dead_letters (job_id, site, host, run_id, deliveries,"
            " ts) VALUES (?,?,?,?,?,?)", (job_id, row[0], row[1], row[2], deliveries,
                                         time.time()))
        if cur.rowcount == 0:
            return None
        return str(row[0]), str(row[1]), str(row[2])
