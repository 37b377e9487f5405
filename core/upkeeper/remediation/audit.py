"""The remediation audit trail: an append-only, hash-chained log in the history database.

Every plan, approval, apply, verify, refusal and check-mode run is one record, and so are
the dashboard's own actions (mute, acknowledge). Each record's hash covers its content and
the previous record's hash, keyed with a per-database secret kept beside the database
(``<db>.audit-key``, mode 0600): editing, removing or reordering a record, or cutting the
tail, is found by :meth:`AuditLog.verify`. The newest record's number and hash are also
kept beside the database (``<db>.audit-head``, mode 0600), out of reach of someone who
can write the database alone: the head row in the database is as easy to move back as
the tail is to cut. Triggers refuse UPDATE and DELETE on the table,
so retention and careless SQL cannot thin it out; a deliberate edit is still detected.

Stable API (used by the remediation engine, the CLI and the web dashboard)::

    log = AuditLog(history)                       # or AuditLog(sqlite3_connection)
    rec = log.append("mute", "web:alice", "host-1/disk.usage", {"until": "..."},
                     host="host-1", client="acme")
    log.records(host="host-1", kinds=("apply", "verify"), since=dt, limit=50)
    log.verify()  # -> list[str], empty when the chain is intact
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

__all__ = ["AUDIT_SCHEMA", "GENESIS", "KIND_RE", "AuditError", "AuditLog", "AuditRecord"]

AUDIT_SCHEMA = (
"""CREATE TABLE IF NOT EXISTS remediation_audit (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    subject TEXT NOT NULL,
    host TEXT,
    client TEXT,
    data TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
"CREATE INDEX IF NOT EXISTS remediation_audit_host ON remediation_audit(host, ts)",
"CREATE INDEX IF NOT EXISTS remediation_audit_client ON remediation_audit(client, ts)",
"CREATE INDEX IF NOT EXISTS remediation_audit_kind ON remediation_audit(kind, ts)",
"""CREATE TABLE IF NOT EXISTS remediation_audit_head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
)""",
"""CREATE TRIGGER IF NOT EXISTS remediation_audit_no_update
    BEFORE UPDATE ON remediation_audit
    BEGIN SELECT RAISE(ABORT, 'the remediation audit trail is append-only'); END""",
"""CREATE TRIGGER IF NOT EXISTS remediation_audit_no_delete
    BEFORE DELETE ON remediation_audit
    BEGIN SELECT RAISE(ABORT, 'the remediation audit trail is append-only'); END""",
)

#: The previous hash of the first record.
GENESIS = "0" * 64
#: Record kinds are short lower-case words (``plan``, ``apply``, ``mute`` ...).
KIND_RE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_MAX_TEXT = 512


class AuditError(Exception):
    """A record that cannot be written (bad kind, data that is not JSON-able)."""


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the trail. ``data`` is the JSON payload as stored (already redacted)."""

    seq: int
    ts: datetime
    kind: str
    actor: str
    subject: str
    data: dict[str, Any] = field(default_factory=dict)
    host: str | None = None
    client: str | None = None
    prev_hash: str = GENESIS
    hash: str = ""


class _HistoryLike(Protocol):
    path: str

    def transaction(self) -> Any: ...

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...


class _ConnectionDb:
    """A bare sqlite3 connection behind the two methods AuditLog uses."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        row = conn.execute("PRAGMA database_list").fetchone()
        self.path = (row[2] if row is not None else "") or ":memory:"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._conn.execute(sql, args)
            cur.row_factory = sqlite3.Row
            return list(cur.fetchall())


_MEMORY_KEYS: dict[int, bytes] = {}


def _key_for(path: str, ident: int) -> tuple[bytes, bool]:
    """The chain's HMAC key, a random secret beside the database made on first use, and
    whether it was made just now."""
    if path in ("", ":memory:"):
        return _MEMORY_KEYS.setdefault(ident, secrets.token_bytes(32)), False
    key_path = Path(path + ".audit-key")
    try:
        return bytes.fromhex(key_path.read_text(encoding="ascii").strip()), False
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return bytes.fromhex(key_path.read_text(encoding="ascii").strip()), False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex())
    return key, True


def _head_path(path: str) -> Path | None:
    return None if path in ("", ":memory:") else Path(path + ".audit-head")


def _advance_head(path: Path, seq: int, digest: str) -> None:
    """Record (seq, digest) as the newest record unless a later one is there already
    (writers append in turns but write this file after their commit, in any order)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        known = _parse_head(os.read(fd, 200).decode("ascii", "replace"))
        if known is None or known[0] < seq:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{seq} {digest}\n".encode("ascii"), 0)
    finally:
        os.close(fd)


def _read_head(path: Path) -> tuple[int, str] | str | None:
    """(seq, hash) from the head file, None when there is none, or what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        text = os.read(fd, 200).decode("ascii", "replace")
    finally:
        os.close(fd)
    return _parse_head(text) or f"the audit head file {path} is unreadable"


def _parse_head(text: str) -> tuple[int, str] | None:
    parts = text.split()
    if len(parts) == 2 and parts[0].isdigit() and re.fullmatch(r"[0-9a-f]{64}", parts[1]):
        return int(parts[0]), parts[1]
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT]


class AuditLog:
    """The audit trail of one history database.

    :param db: a :class:`~upkeeper.store.history.History` or an open sqlite3 connection.
    :param redact: applied to ``data`` before it is stored (the run's secret redactor,
        ``Redactor.obj``); nothing secret should reach the trail.
    :param clock: the time source (UTC), injectable for tests.
    """

    def __init__(self, db: _HistoryLike | sqlite3.Connection, *,
                 redact: Callable[[Any], Any] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._db: _HistoryLike = _ConnectionDb(db) if isinstance(db, sqlite3.Connection) else db
        self._redact = redact
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        with self._db.transaction() as conn:
            for statement in AUDIT_SCHEMA:
                conn.execute(statement)
        self._key, made = _key_for(self._db.path, id(db))
        #: Records older than the key file: they were chained with a key now lost.
        self._key_lost = made and bool(self._db.query("SELECT 1 FROM remediation_audit"
                                                      " LIMIT 1"))

    def _digest(self, seq: int, ts: float, kind: str, actor: str, subject: str,
                host: str | None, client: str | None, data: str, prev: str) -> str:
        body = _canonical([seq, repr(ts), kind, actor, subject, host, client, data, prev])
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).hexdigest()

    def append(self, kind: str, actor: str, subject: str,
               data: dict[str, Any] | None = None, *, host: str | None = None,
               client: str | None = None) -> AuditRecord:
        """Add one record at the end of the chain (atomic; safe across processes).

        :param kind: what happened (``plan``, ``apply``, ``approve``, ``mute`` ...).
        :param actor: who or what did it (``schedule``, ``cli:root``, ``web:alice``).
        :param subject: what it is about (``host/check/fix``, an approval id).
        :raises AuditError: ``kind`` is malformed or ``data`` is not JSON-able.
        """
        if not KIND_RE.match(kind):
            raise AuditError(f"audit kind {kind!r} is not a short lower-case word")
        payload = dict(data or {})
        if self._redact is not None:
            payload = self._redact(payload)
        try:
            text = _canonical(payload)
        except (TypeError, ValueError) as exc:
            raise AuditError(f"audit data for {kind!r} is not JSON: {exc}") from None
        actor, subject = _clip(str(actor)), _clip(str(subject))
        ts = self._clock().timestamp()
        with self._db.transaction() as conn:
            head = conn.execute("SELECT seq, hash FROM remediation_audit"
                                " ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (1, GENESIS) if head is None else (head[0] + 1, head[1])
            digest = self._digest(seq, ts, kind, actor, subject, host, client, text, prev)
            conn.execute("INSERT INTO remediation_audit (seq, ts, kind, actor, subject, host,"
                         " client, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (seq, ts, kind, actor, subject, host, client, text, prev, digest))
            conn.execute("INSERT INTO remediation_audit_head (one, seq, hash) VALUES (1,?,?)"
                         " ON CONFLICT(one) DO UPDATE SET seq=excluded.seq,"
                         " hash=excluded.hash", (seq, digest))
        head = _head_path(self._db.path)
        if head is not None:
            _advance_head(head, seq, digest)
        return AuditRecord(seq, datetime.fromtimestamp(ts, tz=timezone.utc), kind, actor,
                           subject, json.loads(text), host, client, prev, digest)

    def records(self, *, host: str | None = None, client: str | None = None,
                subject: str | None = None, kinds: Iterable[str] | None = None,
                since: datetime | None = None, until: datetime | None = None,
                after_seq: int = 0, limit: int | None = None,
                newest_first: bool = False) -> list[AuditRecord]:
        """Records matching every given filter, oldest first unless ``newest_first``."""
        where, args = ["seq > ?"], list[Any]([after_seq])
        for column, value in (("host", host), ("client", client), ("subject", subject)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if kinds is not None:
            kind_list = list(kinds)
            where.append(f"kind IN ({','.join('?' * len(kind_list)) or 'NULL'})")
            args.extend(kind_list)
        if since is not None:
            where.append("ts >= ?")
            args.append(since.timestamp())
        if until is not None:
            where.append("ts < ?")
            args.append(until.timestamp())
        sql = (f"SELECT * FROM remediation_audit WHERE {' AND '.join(where)}"
               f" ORDER BY seq {'DESC' if newest_first else 'ASC'}")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(row) for row in self._db.query(sql, tuple(args))]

    def authentic(self, kind: str, subject: str) -> list[AuditRecord]:
        """Records of ``kind`` about ``subject`` whose hash checks out with the key:
        written by upkeeper, not by someone who can write the database alone."""
        rows = self._db.query("SELECT * FROM remediation_audit WHERE kind=? AND subject=?"
                              " ORDER BY seq", (kind, subject))
        return [_record(r) for r in rows if hmac.compare_digest(self._digest(
            r["seq"], r["ts"], r["kind"], r["actor"], r["subject"], r["host"], r["client"],
            r["data"], r["prev_hash"]), r["hash"])]

    def verify(self) -> list[str]:
        """Problems with the chain (an edited, removed, inserted or reordered record, a cut
        tail, a missing key); empty when intact. Reads the whole table once."""
        problems: list[str] = []
        if self._key_lost:
            problems.append(f"the audit key {self._db.path}.audit-key was missing: no "
                            "record can be verified (restore the key file)")
        prev, expected = GENESIS, 1
        rows = self._db.query("SELECT * FROM remediation_audit ORDER BY seq")
        for row in rows:
            seq = row["seq"]
            if seq != expected:
                problems.append(f"record {expected}"
                                + (f"..{seq - 1}" if seq - 1 > expected else "")
                                + " removed")
            if row["prev_hash"] != prev:
                problems.append(f"record {seq}: does not follow the record before it")
            digest = self._digest(seq, row["ts"], row["kind"], row["actor"], row["subject"],
                                  row["host"], row["client"], row["data"], row["prev_hash"])
            if not hmac.compare_digest(digest, row["hash"]):
                problems.append(f"record {seq} ({row['kind']}, {row['subject']}): edited")
            prev, expected = row["hash"], seq + 1
        head = self._db.query("SELECT seq, hash FROM remediation_audit_head")
        if head:
            if head[0]["seq"] >= expected:
                problems.append(f"records {expected}..{head[0]['seq']} removed"
                                " from the end")
            elif head[0]["seq"] != expected - 1 or head[0]["hash"] != prev:
                problems.append("the chain's head does not match its last record")
        elif rows:
            problems.append("the chain's head is missing")
        return problems + self._verify_head_file(rows, expected - 1)

    def _verify_head_file(self, rows: list[sqlite3.Row], last: int) -> list[str]:
        path = _head_path(self._db.path)
        if path is None:
            return []
        head = _read_head(path)
        if isinstance(head, str):
            return [head]
        if head is None:
            return [f"the audit head file {path} is missing: records cut from the end"
                    " cannot be found"] if rows else []
        seq, digest = head
        if seq > last:
            return [f"records {last + 1}..{seq} removed from the end (the head file"
                    f" {path} names record {seq})"]
        found = next((r for r in rows if r["seq"] == seq), None)
        if found is not None and not hmac.compare_digest(found["hash"], digest):
            return [f"record {seq} does not match the head file {path}"]
        return []


def _record(row: sqlite3.Row) -> AuditRecord:
    return AuditRecord(row["seq"], datetime.fromtimestamp(row["ts"], tz=timezone.utc),
                       row["kind"], row["actor"], row["subject"], json.loads(row["data"]),
                       row["host"], row["client"], row["prev_hash"], row["hash"])
