"""Run history, metrics and per-check state in SQLite (WAL, one transaction per write).

A write that fails (disk full, read-only, damaged file) never ends a run: the run goes on
in memory, one error is logged per run, and :meth:`History.finish_run` marks the run's
verdict as not stored (an UNKNOWN result and ``meta["history_error"]``).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from upkeeper.models import Result, RunRecord, Status
from upkeeper.store.current import UPSERT as CURRENT_UPSERT
from upkeeper.store.current import ensure_current
from upkeeper.store.errors import (
    HistoryDamaged,
    HistoryError,
    HistoryMissing,
    HistoryUnwritable,
    history_error,
)
from upkeeper.store.schema import SCHEMA

__all__ = ["DB_NAME", "STATE_DIR_ENV", "History", "HistoryDamaged", "HistoryError",
           "HistoryMissing", "HistoryUnwritable", "HostHistory", "default_state_dir"]

log = logging.getLogger("upkeeper.history")

STATE_DIR_ENV = "UPKEEPER_STATE_DIR"
DB_NAME = "history.sqlite3"
#: Bound on SQL parameters per query (SQLite's limit is 999 in older builds).
_IDS_PER_QUERY = 500


def default_state_dir() -> Path:
    """``$UPKEEPER_STATE_DIR`` or the platform's user state dir for upkeeper."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    import platformdirs  # only when no state dir is given: start-up cost

    return Path(platformdirs.user_state_dir("upkeeper", appauthor=False))


def _ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass
class _Unstored:
    """Why a run's results are not (all) in the database."""

    error: str
    failed: int = 0
    run_missing: bool = False


class History:
    """The history database. Thread-safe: writes are serialised and each is atomic.

    :param create: create the file (and its directory) when missing; read-only commands
        pass False and get :class:`HistoryMissing` instead of an empty new database.
    """

    def __init__(self, path: str | Path | None = None, *, create: bool = True) -> None:
        if path is None:
            path = default_state_dir() / DB_NAME
        self.path = str(path)
        self._lock = threading.RLock()
        self._unstored: dict[str, _Unstored] = {}
        self._broken: HistoryError | None = None
        memory = self.path == ":memory:"
        if not memory and not create and not Path(self.path).is_file():
            raise HistoryMissing(f"no history database at {self.path}: nothing has run with"
                                 f" this state dir (set --state-dir or {STATE_DIR_ENV})")
        try:
            fresh = memory or not Path(self.path).exists() or Path(self.path).stat().st_size == 0
            if not memory:  # private: web password hashes, every client's hosts
                Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                if not Path(self.path).exists():  # SQLite gives WAL files its mode
                    os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            if fresh:
                # Only an empty file can take it; prune then gives pages back cheaply.
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            if not memory:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            ensure_current(self._db)
        except (OSError, sqlite3.Error) as exc:
            err = history_error(exc, self.path, "open")
            if type(err) is HistoryError:
                err = HistoryError(f"{err} (set --state-dir or {STATE_DIR_ENV})")
            raise err from exc

    @classmethod
    def unstorable(cls, path: str | Path, error: HistoryError) -> History:
        """An in-memory stand-in for a database that cannot be opened (disk full,
        read-only): runs go on, and each run's verdict says it was not stored."""
        self = cls(":memory:")
        self.path, self._broken = str(path), error
        return self

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; other threads wait for it. SQLite errors, including a failed
        COMMIT (disk full), roll back and raise :class:`HistoryError`. Writes nested in
        it join it (many results, one COMMIT)."""
        with self._lock:
            if self._db.in_transaction:  # nested (a batch of writes): one COMMIT for all
                yield self._db
                return
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise history_error(exc, self.path, "write to") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise history_error(exc, self.path, "write to") from exc
                raise

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (e.g. SQLITE_FULL): then there is
        # nothing left to undo, and a transaction left open would refuse the next BEGIN.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.error("rolling back in %s failed: %s", self.path, exc)

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args))
            except sqlite3.Error as exc:
                raise history_error(exc, self.path, "read") from exc

    def _store_failed(self, run_id: str, exc: HistoryError, *, run_missing: bool = False,
                      count: int = 1) -> None:
        lost = self._unstored.get(run_id)
        if lost is None:
            lost = self._unstored[run_id] = _Unstored(str(exc), run_missing=run_missing)
            log.error("%s; run %s goes on, its results are not stored", exc, run_id)
        lost.failed += count

    def start_run(self, run: RunRecord) -> None:
        """Record a run's start; if that fails the run goes on unstored (see class doc)."""
        if self._broken is not None:
            self._store_failed(run.run_id, self._broken, run_missing=True, count=0)
            return
        try:
            with self.transaction() as db:
                db.execute(
                    "INSERT INTO runs (id, playbook, started, check_mode, meta)"
                    " VALUES (?,?,?,?,?)",
                    (run.run_id, run.playbook, _ts(run.started), int(run.check_mode),
                     json.dumps(run.meta, default=str)),
                )
        except HistoryError as exc:
            self._store_failed(run.run_id, exc, run_missing=True, count=0)

    def add_result(self, run_id: str, result: Result) -> int:
        """Store one result and its metrics in a single transaction; 0 if it could not
        be stored (counted, and reported by :meth:`finish_run`)."""
        lost = self._unstored.get(run_id)
        if lost is not None and lost.run_missing:
            lost.failed += 1
            return 0
        try:
            return self._add_result(run_id, result)
        except HistoryError as exc:
            self._store_failed(run_id, exc)
            return 0

    def _add_result(self, run_id: str, result: Result) -> int:
        ts = _ts(result.started)
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO results (run_id, host, check_name, name, status, summary, details,"
                " changed, duration, ts) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run_id, result.host, result.check, result.name or result.check,
                 result.status.value, result.summary, json.dumps(result.details, default=str),
                 int(result.changed), result.duration, ts),
            )
            rid = int(cur.lastrowid or 0)
            db.execute(CURRENT_UPSERT, (result.host, result.check, result.name or result.check,
                                        rid, run_id, result.status.value, result.summary, ts))
            db.executemany(
                "INSERT INTO metrics (result_id, host, check_name, metric, value, ts)"
                " VALUES (?,?,?,?,?,?)",
                [(rid, result.host, result.check, k, float(v), ts)
                 for k, v in result.metrics.items() if _is_number(v)],
            )
        return rid

    def finish_run(self, run: RunRecord) -> None:
        """Record the end of a run. If any of its writes failed, say so in the run: an
        UNKNOWN ``history`` result (so the verdict and exit code show it) and
        ``run.meta["history_error"]``."""
        lost = self._unstored.get(run.run_id)
        if lost is None or not lost.run_missing:
            try:
                with self.transaction() as db:
                    db.execute(
                        "UPDATE runs SET finished=?, status=?, interrupted=?, meta=?"
                        " WHERE id=?",
                        (_ts(run.finished) if run.finished else None, run.status.value,
                         int(run.interrupted), json.dumps(run.meta, default=str),
                         run.run_id),
                    )
            except HistoryError as exc:
                self._store_failed(run.run_id, exc, count=0)
        lost = self._unstored.pop(run.run_id, None)
        if lost is None:
            return
        what = ("the run and all of its results were" if lost.run_missing else
                f"{lost.failed} of {len(run.results)} results were" if lost.failed else
                "the end of the run was")
        note = f"{what} not stored in history: {lost.error}"
        run.meta["history_error"] = note
        run.results.append(Result(Status.UNKNOWN, note, check="upkeeper.history",
                                  name="history", started=run.finished or run.started))

    def unstored(self, run_id: str) -> bool:
        """True while ``run_id`` has writes that failed (until :meth:`finish_run`)."""
        return run_id in self._unstored

    def series(self, host: str, metric: str, check: str | None = None,
               since: datetime | None = None,
               until: datetime | None = None) -> list[tuple[datetime, float]]:
        """A metric's past values for one host, oldest first."""
        sql = "SELECT ts, value FROM metrics WHERE host=? AND metric=?"
        args: list[Any] = [host, metric]
        if check:
            sql += " AND check_name=?"
            args.append(check)
        if since:
            sql += " AND ts>=?"
            args.append(_ts(since))
        if until:
            sql += " AND ts<=?"
            args.append(_ts(until))
        rows = self.query(sql + " ORDER BY ts", tuple(args))
        return [(datetime.fromtimestamp(r["ts"], tz=timezone.utc), r["value"]) for r in rows]

    def metric_names(self, host: str | None = None) -> list[str]:
        if host:
            rows = self.query("SELECT DISTINCT metric FROM metrics WHERE host=? ORDER BY 1",
                              (host,))
        else:
            rows = self.query("SELECT DISTINCT metric FROM metrics ORDER BY 1")
        return [r[0] for r in rows]

    def results(self, host: str | None = None, check: str | None = None,
                run_id: str | None = None, limit: int = 100) -> list[Result]:
        """Stored results, newest first."""
        sql = "SELECT * FROM results WHERE 1=1"
        args: list[Any] = []
        for col, val in (("host", host), ("check_name", check), ("run_id", run_id)):
            if val:
                sql += f" AND {col}=?"
                args.append(val)
        sql += " ORDER BY ts DESC, id DESC LIMIT ?"
        args.append(limit)
        rows = self.query(sql, tuple(args))
        metrics = self._metrics_of([r["id"] for r in rows])
        out = []
        for r in rows:
            out.append(Result(
                status=Status(r["status"]), summary=r["summary"],
                metrics=metrics.get(r["id"], {}),
                details=json.loads(r["details"]) if r["details"] else None,
                changed=bool(r["changed"]), host=r["host"], check=r["check_name"],
                name=r["name"], duration=r["duration"],
                started=datetime.fromtimestamp(r["ts"], tz=timezone.utc),
            ))
        return out

    def _metrics_of(self, result_ids: list[int]) -> dict[int, dict[str, float]]:
        """Metrics of many results, a few hundred ids per query (not one query each)."""
        out: dict[int, dict[str, float]] = {}
        for start in range(0, len(result_ids), _IDS_PER_QUERY):
            chunk = result_ids[start:start + _IDS_PER_QUERY]
            marks = ",".join("?" * len(chunk))
            for m in self.query("SELECT result_id, metric, value FROM metrics"
                                f" WHERE result_id IN ({marks})", tuple(chunk)):
                out.setdefault(m["result_id"], {})[m["metric"]] = m["value"]
        return out

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,))
        return [_run_row(r) for r in rows]

    def last_run_id(self, playbook: str | None = None) -> str | None:
        if playbook:
            rows = self.query("SELECT id FROM runs WHERE playbook=? ORDER BY started DESC"
                              " LIMIT 1", (playbook,))
        else:
            rows = self.query("SELECT id FROM runs ORDER BY started DESC LIMIT 1")
        return rows[0][0] if rows else None

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self.query("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows:
            return None
        r = rows[0]
        run = RunRecord(run_id=r["id"], playbook=r["playbook"],
                        started=_dt(r["started"]) or datetime.now(timezone.utc),
                        finished=_dt(r["finished"]), check_mode=bool(r["check_mode"]),
                        interrupted=bool(r["interrupted"]), meta=json.loads(r["meta"] or "{}"))
        run.results = list(reversed(self.results(run_id=run_id, limit=1_000_000)))
        return run

    def get_state(self, host: str, check: str, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM state WHERE host=? AND check_name=? AND key=?",
                          (host, check, key))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, host: str, check: str, key: str, value: Any) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO state (host, check_name, key, value, updated) VALUES (?,?,?,?,?)"
                " ON CONFLICT(host, check_name, key) DO UPDATE SET value=excluded.value,"
                " updated=excluded.updated",
                (host, check, key, json.dumps(value, default=str),
                 datetime.now(timezone.utc).timestamp()),
            )

    def for_host(self, host: str, check: str) -> HostHistory:
        return HostHistory(self, host, check)


def _run_row(r: sqlite3.Row) -> dict[str, Any]:
    finished = _dt(r["finished"])
    return {
        "run_id": r["id"], "playbook": r["playbook"],
        "started": (_dt(r["started"]) or datetime.now(timezone.utc)).isoformat(),
        "finished": finished.isoformat() if finished else None,
        "status": r["status"], "check_mode": bool(r["check_mode"]),
        "interrupted": bool(r["interrupted"]),
    }


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


class HostHistory:
    """History as one check on one host sees it (what ``ctx.history`` is)."""

    def __init__(self, history: History, host: str, check: str) -> None:
        self._h = history
        self.host = host
        self.check = check

    def series(self, metric: str, since: datetime | None = None,
               check: str | None = None) -> list[tuple[datetime, float]]:
        """Past values of ``metric`` on this host (any check unless ``check`` given)."""
        return self._h.series(self.host, metric, check=check, since=since)

    def last_results(self, limit: int = 10, check: str | None = None) -> list[Result]:
        """This check's previous results on this host, newest first; with ``check``,
        another check's (what ``backup.restic`` last said about this host)."""
        return self._h.results(host=self.host, check=check or self.check, limit=limit)

    def get_state(self, key: str, default: Any = None) -> Any:
        return self._h.get_state(self.host, self.check, key, default)

    def set_state(self, key: str, value: Any) -> None:
        self._h.set_state(self.host, self.check, key, value)
