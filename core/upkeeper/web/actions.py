"""What a person does on the dashboard: mute a check's alerts (or a whole host's) for a
period, acknowledge a problem, and approve or deny a pending fix. Each is recorded in
the audit trail with who did it.

Mutes are kept where the after-run alerting reads them
(:func:`upkeeper.after_run.alerts.muted_until`); acknowledgements are this module's table.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from upkeeper.after_run.alerts import MUTE_ALL, MUTE_KEY
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

    def audit(self, user: User, action: str, **data: Any) -> None:
        from upkeeper.web.audit import record

        record(self.history, actor=f"web:{user.name}", action=action, data=data)

    def mute(self, user: User, host: str, check: str | None, seconds: float,
             reason: str, now: float | None = None) -> float:
        """Mute alerts of ``check`` on ``host`` (every check: None) for ``seconds``."""
        if not 0 < seconds <= MAX_MUTE_SECONDS:
            raise ActionError(f"a mute lasts from 1 second to {MAX_MUTE_SECONDS // 86400}"
                              " days")
        until = (now or time.time()) + seconds
        self.history.set_state(host, check or MUTE_ALL, MUTE_KEY,
                               {"until": until, "by": user.name, "reason": reason[:500]})
        self.audit(user, "alert.mute", host=host, check=check or MUTE_ALL, until=until,
                   reason=reason[:500])
        return until

    def unmute(self, user: User, host: str, check: str | None) -> None:
        with self.history.transaction() as db:
            db.execute("DELETE FROM state WHERE host=? AND check_name=? AND key=?",
                       (host, check or MUTE_ALL, MUTE_KEY))
        self.audit(user, "alert.unmute", host=host, check=check or MUTE_ALL)

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

    def acknowledge(self, user: User, host: str, name: str, status: str,
                    note: str = "") -> None:
        """Acknowledge the current problem of ``name`` on ``host`` (``status``); it holds
        until the status changes."""
        with self.history.transaction() as db:
            db.execute("INSERT OR REPLACE INTO web_acks (host, name, status, by, at, note)"
                       " VALUES (?,?,?,?,?,?)", (host, name, status, user.name, time.time(),
                                                 note[:500]))
        self.audit(user, "problem.acknowledge", host=host, check=name, status=status,
                   note=note[:500])

    def acks(self, hosts: Sequence[str] | None) -> dict[tuple[str, str], Ack]:
        rows = self.history.query("SELECT * FROM web_acks")
        wanted = set(hosts) if hosts is not None else None
        return {(r["host"], r["name"]): Ack(r["host"], r["name"], r["status"], r["by"],
                                            r["at"], r["note"])
                for r in rows if wanted is None or r["host"] in wanted}
