"""Run history, metrics and per-check state in SQLite (WAL, one transaction per write)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import platformdirs

from upkeeper.models import Result, RunRecord, Status

STATE_DIR_ENV = "UPKEEPER_STATE_DIR"
DB_NAME = "history.sqlite3"
#: Bound on SQL parameters per query (SQLite's limit is 999 in older builds).
_IDS_PER_QUERY = 500

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    playbook TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL,
    status TEXT,
    check_mode INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    summary TEXT NOT NULL,
    details TEXT,
    changed INTEGER NOT NULL DEFAULT 0,
    duration REAL NOT NULL DEFAULT 0,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_host_check ON results(host, check_name, ts);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
CREATE TABLE IF NOT EXISTS metrics (
    result_id INTEGER NOT NULL REFERENCES results(id),
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_series ON metrics(host, metric, ts);
CREATE INDEX IF NOT EXISTS metrics_result ON metrics(result_id);
CREATE TABLE IF NOT EXISTS state (
    host TEXT NOT NULL,
    check_name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (host, check_name, key)
);
"""


class HistoryError(Exception):
    """The history database cannot be opened (the message says where and why)."""


def default_state_dir() -> Path:
    """``$UPKEEPER_STATE_DIR`` or the platform's user state dir for upkeeper."""
    env = os.environ.get(STATE_DIR_ENV)
    if env:
        return Path(env)
    return Path(platformdirs.user_state_dir("upkeeper", appauthor=False))


def _ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


class History:
    """The history database. Thread-safe: writes are serialised and each is atomic."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            path = default_state_dir() / DB_NAME
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30,
                                       isolation_level=None)
            self._db.row_factory = sqlite3.Row
            if self.path != ":memory:":
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history database {self.path}: {exc} "
                               f"(set --state-dir or {STATE_DIR_ENV})") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write; other threads wait for it."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    def start_run(self, run: RunRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, playbook, started, check_mode, meta) VALUES (?,?,?,?,?)",
                (run.run_id, run.playbook, _ts(run.started), int(run.check_mode),
                 json.dumps(run.meta, default=str)),
            )

    def add_result(self, run_id: str, result: Result) -> int:
        """Store one result and its metrics in a single transaction."""
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
            db.executemany(
                "INSERT INTO metrics (result_id, host, check_name, metric, value, ts)"
                " VALUES (?,?,?,?,?,?)",
                [(rid, result.host, result.check, k, float(v), ts)
                 for k, v in result.metrics.items() if _is_number(v)],
            )
        return rid

    def finish_run(self, run: RunRecord) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished=?, status=?, interrupted=?, meta=? WHERE id=?",
                (_ts(run.finished) if run.finished else None, run.status.value,
                 int(run.interrupted), json.dumps(run.meta, default=str), run.run_id),
            )

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

    def last_results(self, limit: int = 10) -> list[Result]:
        """This check's previous results on this host, newest first."""
        return self._h.results(host=self.host, check=self.check, limit=limit)

    def get_state(self, key: str, default: Any = None) -> Any:
        return self._h.get_state(self.host, self.check, key, default)

    def set_state(self, key: str, value: Any) -> None:
        self._h.set_state(self.host, self.check, key, value)
