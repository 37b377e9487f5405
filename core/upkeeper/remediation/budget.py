"""Budgets for fixes, in the history database so they survive restarts and kill -9.

Per (host, fix): at most ``attempts`` per rolling ``per`` period; after a failure the
next attempt waits ``backoff * 2**(failures-1)``; after ``quarantine_after`` consecutive
failures the fix is quarantined on that host (until ``upkeeper fixes release``) and the
caller is told exactly once. A failure is a failed apply or verify, or the same failure
coming back within ``per`` of a fix that verified (it did not hold); a fix that held for
a whole period clears the count. After a fix, a settle period passes before the same
failure is a trigger again.

Concurrency: a lease row per host (primary key: one fix per host at a time, across
processes) counted against a per-client and a global cap. An attempt is committed before
anything is applied, so a killed process still has it counted.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from upkeeper.remediation.audit import _HistoryLike

__all__ = ["BUDGET_SCHEMA", "DEFAULT_CLIENT_CAP", "DEFAULT_GLOBAL_CAP", "BudgetState",
           "Budgets", "Verdict"]

#: Default caps on concurrent fixes (per client, and for one history database).
DEFAULT_CLIENT_CAP = 2
DEFAULT_GLOBAL_CAP = 10

BUDGET_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS remediation_budget (
    host TEXT NOT NULL,
    fix TEXT NOT NULL,
    attempts TEXT NOT NULL DEFAULT '[]',
    failures INTEGER NOT NULL DEFAULT 0,
    last_attempt REAL,
    last_success REAL,
    settle_until REAL,
    quarantined REAL,
    reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host, fix)
)""",
    "CREATE INDEX IF NOT EXISTS remediation_budget_quarantined"
    " ON remediation_budget(quarantined)",
    """CREATE TABLE IF NOT EXISTS remediation_leases (
    host TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    fix TEXT NOT NULL,
    owner TEXT NOT NULL,
    node TEXT NOT NULL,
    pid INTEGER NOT NULL,
    expires REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS remediation_leases_client ON remediation_leases(client)",
)


@dataclass(frozen=True)
class BudgetState:
    host: str
    fix: str
    attempts: tuple[float, ...] = ()
    failures: int = 0
    last_attempt: float | None = None
    last_success: float | None = None
    settle_until: float | None = None
    quarantined: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    """May the fix be attempted now? ``exhausted`` is True exactly once per quarantine."""

    allowed: bool
    reason: str = ""
    exhausted: bool = False
    settling: bool = False
    #: When the verdict was reached (clock seconds): pass it back as ``seen_before``.
    at: float = 0.0


def _fmt(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Budgets:
    """Budget and lease bookkeeping. ``clock`` is injectable (UTC)."""

    def __init__(self, db: _HistoryLike, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        with db.transaction() as conn:
            for statement in BUDGET_SCHEMA:
                conn.execute(statement)

    def now(self) -> float:
        return self._clock().timestamp()

    def state(self, host: str, fix: str) -> BudgetState:
        rows = self._db.query("SELECT * FROM remediation_budget WHERE host=? AND fix=?",
                              (host, fix))
        return _state(rows[0]) if rows else BudgetState(host, fix)

    def all(self, *, quarantined_only: bool = False) -> list[BudgetState]:
        sql = "SELECT * FROM remediation_budget"
        if quarantined_only:
            sql += " WHERE quarantined IS NOT NULL"
        return [_state(r) for r in self._db.query(sql + " ORDER BY host, fix")]

    def consider(self, host: str, fix: str, *, attempts: int, per: timedelta,
                 backoff: timedelta, quarantine_after: int,
                 seen_before: float | None = None) -> Verdict:
        """Whether a trigger of ``fix`` on ``host`` may be attempted now (atomic).

        ``seen_before``: the ``at`` of this trigger's first verdict. Checked again under
        the host's lease, a trigger that waited behind another attempt of the same fix
        on the host is superseded (its failure was seen before that fix ran): it must
        neither spend the budget again nor count as the fix not holding."""
        with self._db.transaction() as conn:
            # The clock is read under the write lock: a ``now`` taken before waiting for
            # it could predate a fix that finished meanwhile (its settle_until), and a
            # settle period of 0 would then still read as "settling".
            now = self.now()
            conn.execute("INSERT OR IGNORE INTO remediation_budget (host, fix) VALUES (?,?)",
                         (host, fix))
            st = _state(conn.execute("SELECT * FROM remediation_budget WHERE host=? AND"
                                     " fix=?", (host, fix)).fetchone())
            if st.quarantined is not None:
                return Verdict(False, f"quarantined since {_fmt(st.quarantined)}: {st.reason}"
                                      " (`upkeeper fixes release` lifts it)", at=now)
            if (seen_before is not None and st.last_attempt is not None
                    and st.last_attempt > seen_before):
                return Verdict(False, "superseded: the fix ran on this host after this "
                                      "failure was seen (the next run checks again)",
                               settling=True, at=now)
            if st.settle_until is not None and now < st.settle_until:
                return Verdict(False, f"settling after the last fix until "
                                      f"{_fmt(st.settle_until)}", settling=True, at=now)
            failures, last_success = st.failures, st.last_success
            if last_success is not None:
                if now - last_success < per.total_seconds():
                    failures += 1  # the fix that verified did not hold
                else:
                    failures = 0
                last_success = None
            reason, exhausted = "", False
            if failures >= quarantine_after:
                reason = (f"{failures} failed attempt{'s' if failures > 1 else ''} in a row"
                          " (the failure keeps coming back or the fix does not work)")
                exhausted = True
            conn.execute("UPDATE remediation_budget SET failures=?, last_success=?,"
                         " quarantined=?, reason=? WHERE host=? AND fix=?",
                         (failures, last_success, now if exhausted else None, reason,
                          host, fix))
            if exhausted:
                return Verdict(False, f"quarantined: {reason}", exhausted=True, at=now)
            recent = [t for t in st.attempts if now - t < per.total_seconds()]
            if len(recent) >= attempts:
                return Verdict(False, f"budget spent ({attempts} per {per}); next attempt"
                                      f" after {_fmt(min(recent) + per.total_seconds())}",
                               at=now)
            if failures and st.last_attempt is not None:
                wait = backoff.total_seconds() * 2 ** (failures - 1)
                if now < st.last_attempt + wait:
                    return Verdict(False, f"backing off after {failures} failure"
                                          f"{'s' if failures > 1 else ''} until "
                                          f"{_fmt(st.last_attempt + wait)}", at=now)
        return Verdict(True, at=now)

    def begin(self, host: str, fix: str, per: timedelta) -> None:
        """Count an attempt, committed before anything is applied."""
        with self._db.transaction() as conn:
            now = self.now()
            row = conn.execute("SELECT attempts FROM remediation_budget WHERE host=? AND"
                               " fix=?", (host, fix)).fetchone()
            kept = [t for t in json.loads(row[0] if row else "[]")
                    if now - t < per.total_seconds()]
            conn.execute("INSERT INTO remediation_budget (host, fix, attempts, last_attempt)"
                         " VALUES (?,?,?,?) ON CONFLICT(host, fix) DO UPDATE SET"
                         " attempts=excluded.attempts, last_attempt=excluded.last_attempt",
                         (host, fix, json.dumps([*kept, now]), now))

    def finish(self, host: str, fix: str, *, succeeded: bool, settle: float,
               quarantine_after: int) -> bool:
        """Record an attempt's outcome; True when this failure quarantines the fix."""
        with self._db.transaction() as conn:
            now = self.now()
            if succeeded:
                conn.execute("UPDATE remediation_budget SET last_success=?, settle_until=?"
                             " WHERE host=? AND fix=?", (now, now + settle, host, fix))
                return False
            conn.execute("UPDATE remediation_budget SET failures=failures+1,"
                         " last_success=NULL, settle_until=? WHERE host=? AND fix=?",
                         (now + settle, host, fix))
            changed = conn.execute(
                "UPDATE remediation_budget SET quarantined=?, reason=? WHERE host=? AND"
                " fix=? AND failures>=? AND quarantined IS NULL",
                (now, f"{quarantine_after} failed attempts in a row", host, fix,
                 quarantine_after)).rowcount
        return bool(changed)

    def release(self, host: str, fix: str) -> bool:
        """Lift a quarantine and clear the failure count; False when not quarantined."""
        with self._db.transaction() as conn:
            return bool(conn.execute(
                "UPDATE remediation_budget SET quarantined=NULL, failures=0, reason=''"
                " WHERE host=? AND fix=? AND quarantined IS NOT NULL", (host, fix)).rowcount)

    def acquire(self, host: str, client: str, fix: str, owner: str, *, client_cap: int,
                global_cap: int, ttl: float) -> str | None:
        """Take the host's lease; the reason it is refused, or None when taken."""
        node = socket.gethostname()
        with self._db.transaction() as conn:
            now = self.now()
            for row in conn.execute("SELECT host, node, pid, expires FROM remediation_leases"
                                    ).fetchall():
                dead = row[1] == node and not _pid_alive(row[2])
                if dead or row[3] <= now:
                    conn.execute("DELETE FROM remediation_leases WHERE host=?", (row[0],))
            held = conn.execute("SELECT fix FROM remediation_leases WHERE host=?",
                                (host,)).fetchone()
            if held is not None:
                return f"another fix ({held[0]}) is running on {host}"
            in_client = conn.execute("SELECT count(*) FROM remediation_leases WHERE"
                                     " client=?", (client,)).fetchone()[0]
            if in_client >= client_cap:
                return f"{in_client} fixes already running for client {client or '-'}"
            total = conn.execute("SELECT count(*) FROM remediation_leases").fetchone()[0]
            if total >= global_cap:
                return f"{total} fixes already running (global cap)"
            conn.execute("INSERT INTO remediation_leases (host, client, fix, owner, node,"
                         " pid, expires) VALUES (?,?,?,?,?,?,?)",
                         (host, client, fix, owner, node, os.getpid(), now + ttl))
        return None

    def release_lease(self, host: str, owner: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM remediation_leases WHERE host=? AND owner=?",
                         (host, owner))


def _state(row: sqlite3.Row | Any) -> BudgetState:
    return BudgetState(row["host"], row["fix"], tuple(json.loads(row["attempts"])),
                       row["failures"], row["last_attempt"], row["last_success"],
                       row["settle_until"], row["quarantined"], row["reason"])
