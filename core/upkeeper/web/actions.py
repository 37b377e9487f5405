"""What a person does on the dashboard: mute a check's alerts (or a whole host's) for a
period, acknowledge a problem, and approve or deny a pending fix. Each is recorded in
the remediation audit trail (:mod:`upkeeper.remediation.audit`) with who did it.

Mutes are kept where the after-run alerting reads them
(:func:`upkeeper.after_run.alerts.muted_until`); acknowledgements are this module's table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upkeeper.after_run.alerts import MUTE_ALL, MUTE_KEY
from upkeeper.remediation.approvals import Approval, ApprovalError, Approvals
from upkeeper.remediation.audit import AuditLog
from upkeeper.store.history import History
from upkeeper.web.auth import User, create_tables

#: The longest mute a person can set (a forgotten mute must not silence a host for ever).
MAX_MUTE_SECONDS = 30 * 86400

SCHEMA = """
CREATE TABLE IF NOT EXISTS web_acks (
    host TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    by TEXT NOT NULL,
    at REAL NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (host, name)
);
"""


class ActionError(ValueError):
    """A request that cannot be carried out (shown to the user)."""


@dataclass
class Ack:
    host: str
    name: str
    status: str
    by: str
    at: float
    note: str


class Actions:
    """Mutes, acknowledgements and approvals on ``history``, audited."""

    def __init__(self, history: History) -> None:
        self.history = history
        create_tables(history, SCHEMA)
        self.log = AuditLog(history)
        self.approvals = Approvals(history, audit=self.log)

    def audit(self, user: User, kind: str, host: str, check: str, client: str | None,
              **data: Any) -> None:
        self.log.append(kind, f"web:{user.name}", f"{host}/{check}", data, host=host,
                        client=client)

    def pending(self, clients: Sequence[str] | None) -> list[Approval]:
        """Fixes waiting for approval (of ``clients``; all: None)."""
        if clients is None:
            return self.approvals.pending()
        return [a for c in clients for a in self.approvals.pending(client=c)]

    def decide(self, user: User, approval_id: str, approve: bool, reason: str = "",
               clients: Sequence[str] | None = None) -> Approval:
        """Approve or deny a pending fix; a fix outside ``clients`` is not found.

        :raises LookupError: no such pending fix for this user.
        :raises ActionError: it was decided or expired meanwhile.
        """
        try:
            found = self.approvals.get(approval_id)
        except ApprovalError:
            raise LookupError(approval_id) from None
        if clients is not None and found.client not in clients:
            raise LookupError(approval_id)
        actor = f"web:{user.name}"
        try:
            if approve:
                return self.approvals.approve(approval_id, actor)
            return self.approvals.deny(approval_id, actor, reason[:500])
        except ApprovalError as exc:
            raise ActionError(str(exc)) from None

    def mute(self, user: User, host: str, client: str | None, check: str | None,
             seconds: float, reason: str, now: float | None = None) -> float:
        """Mute alerts of ``check`` on ``host`` (every check: None) for ``seconds``."""
        if not 0 < seconds <= MAX_MUTE_SECONDS:
            raise ActionError(f"a mute lasts from 1 second to {MAX_MUTE_SECONDS // 86400}"
                              " days")
        until = (now or time.time()) + seconds
        self.history.set_state(host, check or MUTE_ALL, MUTE_KEY,
                               {"until": until, "by": user.name, "reason": reason[:500]})
        self.audit(user, "mute", host, check or MUTE_ALL, client, until=until,
                   reason=reason[:500])
        return until

    def unmute(self, user: User, host: str, client: str | None, check: str | None) -> bool:
        """End a mute early; False when there was none."""
        with self.history.transaction() as db:
            gone = db.execute("DELETE FROM state WHERE host=? AND check_name=? AND key=?",
                              (host, check or MUTE_ALL, MUTE_KEY)).rowcount
        if gone:
            self.audit(user, "unmute", host, check or MUTE_ALL, client)
        return bool(gone)

    def mutes(self, hosts: Sequence[str] | None, now: float | None = None
              ) -> list[dict[str, Any]]:
        """Mutes in force on ``hosts`` (all: None)."""
        import json

        now = now or time.time()
        rows = self.history.query("SELECT host, check_name, value FROM state WHERE key=?",
                                  (MUTE_KEY,))
        wanted = set(hosts) if hosts is not None else None
        out = []
        for r in rows:
            if wanted is not None and r["host"] not in wanted:
                continue
            value = json.loads(r["value"])
            if isinstance(value, dict) and float(value.get("until", 0)) > now:
                out.append({"host": r["host"], "check": r["check_name"], **value})
        return sorted(out, key=lambda m: (m["host"], m["check"]))

    def acknowledge(self, user: User, host: str, client: str | None, name: str,
                    status: str, note: str = "") -> None:
        """Acknowledge the current problem of ``name`` on ``host`` (``status``); it holds
        until the status changes."""
        with self.history.transaction() as db:
            db.execute("INSERT OR REPLACE INTO web_acks (host, name, status, by, at, note)"
                       " VALUES (?,?,?,?,?,?)", (host, name, status, user.name, time.time(),
                                                 note[:500]))
        self.audit(user, "acknowledge", host, name, client, status=status, note=note[:500])

    def acks(self, hosts: Sequence[str] | None) -> dict[tuple[str, str], Ack]:
        rows = self.history.query("SELECT * FROM web_acks")
        wanted = set(hosts) if hosts is not None else None
        return {(r["host"], r["name"]): Ack(r["host"], r["name"], r["status"], r["by"],
                                            r["at"], r["note"])
                for r in rows if wanted is None or r["host"] in wanted}
