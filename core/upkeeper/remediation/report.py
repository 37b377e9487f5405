"""The "fixed for you" part of client reports, read from the audit trail: every fix
whose verify succeeded, with what it did and the check's result before and after."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from upkeeper.remediation.audit import AuditLog, _HistoryLike

__all__ = ["FixedItem", "fixed_for"]


@dataclass(frozen=True)
class FixedItem:
    when: datetime
    host: str
    check: str
    fix: str
    plan: str
    before: str
    after: str


def fixed_for(db: _HistoryLike, hosts: Iterable[str], *, since: datetime | None = None,
              run_id: str | None = None) -> list[FixedItem]:
    """Verified fixes on ``hosts`` since ``since`` and of one run when ``run_id`` is
    given, oldest first."""
    wanted = set(hosts)
    log = AuditLog(db)
    out: list[FixedItem] = []
    for r in log.records(kinds=["verify"], since=since):
        data = r.data
        if r.host not in wanted or not data.get("verified"):
            continue
        if run_id is not None and data.get("run_id") != run_id:
            continue
        _host, _, rest = r.subject.partition("/")
        check, _, fix = rest.rpartition("/")
        before = data.get("before") or {}
        after = (data.get("after") or [{}])[0]
        plans = [p.data.get("plan", {}).get("summary", "")
                 for p in log.records(kinds=["plan"], subject=r.subject, host=r.host)
                 if p.data.get("plan_hash") == data.get("plan_hash")]
        out.append(FixedItem(r.ts, r.host or "", check, fix, plans[-1] if plans else "",
                             f"{before.get('status', '?')}: {before.get('summary', '')}",
                             f"{after.get('status', '?')}: {after.get('summary', '')}"))
    return out
