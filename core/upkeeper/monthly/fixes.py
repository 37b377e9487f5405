"""Fixes done in a period, read from the remediation audit trail (the
``remediation_audit`` table of :mod:`upkeeper.remediation.audit`) when the history has
one: each ``verify`` record is one fix attempt, its plan's summary says what was done.

Read with plain SQL and never written: opening the trail's own API would create its
HMAC key file, and a report only reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from upkeeper.monthly.report import FixDone, FixesSource

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["audit_fixes"]

UTC = timezone.utc
TABLE = "remediation_audit"


def _data(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def audit_fixes(history: History) -> FixesSource | None:
    """A fixes source over the audit trail, or None when remediation never ran here."""
    if not history.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                         (TABLE,)):
        return None

    def fixes(hosts: Sequence[str], start: datetime, end: datetime) -> list[FixDone]:
        out: list[FixDone] = []
        for host in hosts:
            for row in history.query(
                    f"SELECT ts, subject, data FROM {TABLE} WHERE host=? AND ts>=? AND ts<?"
                    " AND kind='verify' ORDER BY seq", (host, start.timestamp(),
                                                        end.timestamp())):
                data = _data(row["data"])
                parts = str(row["subject"]).split("/")
                raw = data.get("trigger")
                trigger: dict[str, Any] = raw if isinstance(raw, dict) else {}
                check = str(trigger.get("name") or (parts[1] if len(parts) > 2 else ""))
                fix = parts[-1] if len(parts) > 2 else str(row["subject"])
                plans = history.query(
                    f"SELECT data FROM {TABLE} WHERE subject=? AND kind='plan' AND ts<=?"
                    " ORDER BY seq DESC LIMIT 1", (row["subject"], row["ts"]))
                plan = _data(plans[0]["data"]).get("plan") if plans else None
                what = str(plan.get("summary") or fix) if isinstance(plan, dict) else fix
                outcome = ("fixed and verified" if data.get("verified") is True else
                           f"not fixed: {data.get('reason') or 'verification failed'}")
                out.append(FixDone(host, check, datetime.fromtimestamp(row["ts"], UTC), what,
                                   outcome, fixed=data.get("verified") is True))
        return out

    return fixes
