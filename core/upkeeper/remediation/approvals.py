"""Approvals of fixes in the ``approve`` tier: a plan waits here until someone approves or
denies it, or it expires (default 24 h; an expired plan is denied and recorded).

An approval covers exactly one plan (by its hash): when the fix next triggers on that host
and plans the same change, the approved plan is applied; a different plan waits for its
own approval. Every state change is an audit record.

Stable API (CLI ``upkeeper fixes``, the web dashboard)::

    approvals = Approvals(history)
    approvals.pending(client="acme")              # -> list[Approval], expired ones denied
    approvals.approve("a1b2c3d4", actor="web:alice")
    approvals.deny("a1b2c3d4", actor="cli:root", reason="not during the audit")
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from upkeeper.remediation.audit import AuditLog, _HistoryLike

__all__ = ["APPROVAL_SCHEMA", "DEFAULT_TTL", "Approval", "ApprovalError", "Approvals",
           "State"]

DEFAULT_TTL = timedelta(hours=24)

APPROVAL_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS remediation_approvals (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    host TEXT NOT NULL,
    client TEXT,
    check_name TEXT NOT NULL,
    fix TEXT NOT NULL,
    plan TEXT NOT NULL,
    plan_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    decided_by TEXT,
    decided REAL,
    reason TEXT NOT NULL DEFAULT ''
)""",
    "CREATE INDEX IF NOT EXISTS remediation_approvals_state"
    " ON remediation_approvals(state, expires)",
    "CREATE INDEX IF NOT EXISTS remediation_approvals_fix"
    " ON remediation_approvals(host, fix, plan_hash)",
)


class State:
    """An approval's states: pending -> approved -> applied, or denied / expired."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    APPLIED = "applied"


class ApprovalError(Exception):
    """Unknown approval id, or one that is no longer pending (the message says which)."""


@dataclass(frozen=True)
class Approval:
    id: str
    created: datetime
    expires: datetime
    host: str
    client: str | None
    check: str
    fix: str
    plan: dict[str, Any] = field(default_factory=dict)
    plan_hash: str = ""
    state: str = State.PENDING
    decided_by: str | None = None
    decided: datetime | None = None
    reason: str = ""

    @property
    def subject(self) -> str:
        return f"{self.host}/{self.check}/{self.fix}"


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


def _approval(row: sqlite3.Row) -> Approval:
    created, expires = _dt(row["created"]), _dt(row["expires"])
    assert created is not None and expires is not None
    return Approval(row["id"], created, expires, row["host"], row["client"],
                    row["check_name"], row["fix"], json.loads(row["plan"]),
                    row["plan_hash"], row["state"], row["decided_by"], _dt(row["decided"]),
                    row["reason"])


class Approvals:
    """The approval queue in the history database.

    :param audit: where state changes are recorded (an :class:`AuditLog` on the same
        database when not given).
    :param clock: the time source (UTC), injectable for tests.
    """

    def __init__(self, db: _HistoryLike, *, audit: AuditLog | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._db = db
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.audit = audit or AuditLog(db, clock=self._clock)
        with db.transaction() as conn:
            for statement in APPROVAL_SCHEMA:
                conn.execute(statement)

    def request(self, *, host: str, client: str | None, check: str, fix: str,
                plan: dict[str, Any], plan_hash: str, actor: str,
                ttl: timedelta = DEFAULT_TTL) -> Approval:
        """The pending approval for this exact plan, made (and recorded) if there is none."""
        self.expire()
        rows = self._db.query(
            "SELECT * FROM remediation_approvals WHERE host=? AND fix=? AND check_name=?"
            " AND plan_hash=? AND state IN (?, ?)",
            (host, fix, check, plan_hash, State.PENDING, State.APPROVED))
        if rows:
            return _approval(rows[0])
        now = self._clock()
        approval = Approval(secrets.token_hex(4), now, now + ttl, host, client, check, fix,
                            plan, plan_hash)
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO remediation_approvals (id, created, expires, host,"
                         " client, check_name, fix, plan, plan_hash, state)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (approval.id, now.timestamp(), approval.expires.timestamp(), host,
                          client, check, fix, json.dumps(plan, sort_keys=True), plan_hash,
                          State.PENDING))
        self.audit.append("approval-requested", actor, approval.subject,
                          {"approval": approval.id, "plan": plan, "plan_hash": plan_hash,
                           "expires": approval.expires.isoformat()},
                          host=host, client=client)
        return approval

    def get(self, approval_id: str) -> Approval:
        rows = self._db.query("SELECT * FROM remediation_approvals WHERE id=?",
                              (approval_id,))
        if not rows:
            raise ApprovalError(f"no approval {approval_id!r} (see `upkeeper fixes list`)")
        return _approval(rows[0])

    def pending(self, *, host: str | None = None,
                client: str | None = None) -> list[Approval]:
        """Plans waiting for a decision, oldest first (expired ones are denied first)."""
        self.expire()
        return self._list(State.PENDING, host, client)

    def approved(self, *, host: str | None = None,
                 client: str | None = None) -> list[Approval]:
        """Approved plans not yet applied."""
        self.expire()
        return self._list(State.APPROVED, host, client)

    def _list(self, state: str, host: str | None, client: str | None) -> list[Approval]:
        sql, args = "SELECT * FROM remediation_approvals WHERE state=?", list[Any]([state])
        if host is not None:
            sql += " AND host=?"
            args.append(host)
        if client is not None:
            sql += " AND client=?"
            args.append(client)
        return [_approval(r) for r in self._db.query(sql + " ORDER BY created", tuple(args))]

    def approve(self, approval_id: str, actor: str) -> Approval:
        """Approve a pending plan; it is applied the next time its fix triggers.

        :raises ApprovalError: unknown id, already decided, or expired (then recorded)."""
        return self._decide(approval_id, actor, State.APPROVED, "")

    def deny(self, approval_id: str, actor: str, reason: str = "") -> Approval:
        """Deny a pending (or approved, not yet applied) plan.

        :raises ApprovalError: unknown id or already decided."""
        return self._decide(approval_id, actor, State.DENIED, reason)

    def _decide(self, approval_id: str, actor: str, state: str, reason: str) -> Approval:
        self.expire()
        allowed = (State.PENDING,) if state == State.APPROVED else (State.PENDING,
                                                                    State.APPROVED)
        now = self._clock()
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE remediation_approvals SET state=?, decided_by=?, decided=?, reason=?"
                f" WHERE id=? AND state IN ({','.join('?' * len(allowed))})",
                (state, actor, now.timestamp(), reason, approval_id, *allowed)).rowcount
        approval = self.get(approval_id)
        if not changed:
            raise ApprovalError(f"approval {approval_id} is {approval.state}"
                                + (f" (by {approval.decided_by})" if approval.decided_by
                                   else ""))
        self.audit.append("approve" if state == State.APPROVED else "deny", actor,
                          approval.subject, {"approval": approval_id, "reason": reason,
                                             "plan_hash": approval.plan_hash},
                          host=approval.host, client=approval.client)
        return approval

    def expire(self) -> list[Approval]:
        """Deny (as ``expired``) and record every undecided approval past its expiry."""
        now = self._clock().timestamp()
        rows = self._db.query("SELECT * FROM remediation_approvals WHERE state IN (?, ?)"
                              " AND expires <= ?", (State.PENDING, State.APPROVED, now))
        gone = []
        for row in rows:
            with self._db.transaction() as conn:
                changed = conn.execute(
                    "UPDATE remediation_approvals SET state=?, decided_by=?, decided=?"
                    " WHERE id=? AND state=?",
                    (State.EXPIRED, "expiry", now, row["id"], row["state"])).rowcount
            if changed:
                approval = _approval(row)
                gone.append(approval)
                self.audit.append("expire", "expiry", approval.subject,
                                  {"approval": approval.id, "was": row["state"],
                                   "plan_hash": approval.plan_hash},
                                  host=approval.host, client=approval.client)
        return gone

    def take(self, *, host: str, check: str, fix: str, plan_hash: str,
             actor: str) -> Approval | None:
        """Consume the approval of this exact plan (state ``applied``), if approved.

        The row alone is not trusted (anyone who can write the database can change it):
        the keyed audit trail must hold the approve record of this plan, the request's
        expiry must not have passed, and no apply may have used it already."""
        self.expire()
        rows = self._db.query(
            "SELECT * FROM remediation_approvals WHERE host=? AND check_name=? AND fix=?"
            " AND plan_hash=? AND state=? ORDER BY created",
            (host, check, fix, plan_hash, State.APPROVED))
        for row in rows:
            approval = _approval(row)
            why = self._unbacked(approval)
            if why:
                self.audit.append("refuse", actor, approval.subject,
                                  {"approval": approval.id, "reason": why,
                                   "plan_hash": plan_hash}, host=host, client=approval.client)
                continue
            with self._db.transaction() as conn:
                if conn.execute("UPDATE remediation_approvals SET state=? WHERE id=? AND"
                                " state=?", (State.APPLIED, approval.id,
                                             State.APPROVED)).rowcount:
                    return approval
        return None

    def _unbacked(self, approval: Approval) -> str | None:
        """Why the audit trail does not back this approved row, or None."""
        def mine(kind: str) -> list[dict[str, Any]]:
            return [r.data for r in self.audit.authentic(kind, approval.subject)
                    if r.data.get("approval") == approval.id]

        if not any(d.get("plan_hash") == approval.plan_hash for d in mine("approve")):
            return "approved in the database without an approve record in the audit trail"
        asked = mine("approval-requested")
        try:
            expires = datetime.fromisoformat(str(asked[0].get("expires"))) if asked else None
        except ValueError:
            expires = None
        if expires is None or expires <= self._clock():
            return "the approval expired (as requested in the audit trail)"
        if mine("apply-begin"):
            return "the approval was used already"
        return None
