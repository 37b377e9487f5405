"""Remediation for site hosts: the fix pass runs at the site's worker, on the job's host
through that host's own transport, and the hub stays the system of record.

- The hub puts the host's budget rows (attempts, failures, settle, quarantine) into the
  job (:func:`hub_fix_state`).
- The worker loads them into its own database, runs the ordinary
  :class:`~upkeeper.remediation.engine.FixPass` for ``auto`` fixes (``approve`` fixes
  are planned only: approvals live at the hub), and sends back, with the job's result,
  the audit records it wrote, the host's budget rows after the pass and the outcomes
  (:func:`worker_fix_pass`, :func:`collect`).
- The hub appends those records to its own hash chain and stores the budget rows in the
  same transaction that accepts the job's first result (:func:`ingest_remediation`);
  records or rows about any other host are dropped (a worker only fixes its job's host).

A job with fixes is a side-effecting job: its lease refuses to run it again after a lost
worker, and a redelivered job resends the first result, so a fix runs once per slot.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import TYPE_CHECKING, Any

from upkeeper.remediation.audit import AuditError, AuditLog
from upkeeper.remediation.budget import Budgets
from upkeeper.remediation.engine import FixOutcome, FixPass
from upkeeper.remediation.wiring import has_fixes

if TYPE_CHECKING:
    from upkeeper.engine.hostrun import FinishedHost
    from upkeeper.engine.playbook import Playbook
    from upkeeper.models import Result
    from upkeeper.plugins import PluginSystem
    from upkeeper.remediation.spec import Binding
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.sites")

__all__ = ["SiteFixPass", "collect", "hub_fix_state", "ingest_remediation",
           "worker_fix_pass"]

_BUDGET_COLUMNS = ("fix", "attempts", "failures", "last_attempt", "last_success",
                   "settle_until", "quarantined", "reason")


def _budget_rows(history: History, host: str) -> list[dict[str, Any]]:
    Budgets(history)  # creates the table on first use
    rows = history.query("SELECT * FROM remediation_budget WHERE host=?", (host,))
    return [{c: row[c] for c in _BUDGET_COLUMNS} for row in rows]


def _clean_row(row: Any) -> tuple[Any, ...] | None:
    """A budget row from the other side as column values, or None when it is malformed
    (a worker's rows are input like any other)."""
    if not isinstance(row, dict) or not isinstance(row.get("fix"), str):
        return None
    try:
        attempts = json.loads(row.get("attempts") or "[]")
    except (TypeError, ValueError):
        return None
    if not isinstance(attempts, list) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in attempts):
        return None
    numbers = ("last_attempt", "last_success", "settle_until", "quarantined")
    if not all(row.get(k) is None or (isinstance(row.get(k), (int, float))
                                      and not isinstance(row.get(k), bool))
               for k in numbers):
        return None
    failures = row.get("failures") or 0
    if not isinstance(failures, int) or isinstance(failures, bool) or failures < 0:
        return None
    return (row["fix"][:200], json.dumps(attempts[-1000:]), failures,
            *(row.get(k) for k in numbers[:3]), row.get("quarantined"),
            str(row.get("reason") or "")[:500])


def _put_budget_rows(history: History, host: str, rows: list[Any], *,
                     keep_quarantine: bool = False) -> None:
    """Store ``rows`` for ``host``; with ``keep_quarantine`` (at the hub) a quarantine
    the hub holds stays: only ``upkeeper fixes release`` lifts it, never a worker."""
    Budgets(history)
    cols = ", ".join(_BUDGET_COLUMNS)
    keep = ("quarantined=COALESCE(remediation_budget.quarantined, excluded.quarantined),"
            " reason=CASE WHEN remediation_budget.quarantined IS NULL THEN excluded.reason"
            " ELSE remediation_budget.reason END") if keep_quarantine else \
        "quarantined=excluded.quarantined, reason=excluded.reason"
    with history.transaction() as conn:
        for row in rows:
            values = _clean_row(row)
            if values is None:
                log.error("dropped a malformed remediation budget row for %s", host)
                continue
            conn.execute(
                f"INSERT INTO remediation_budget (host, {cols}) VALUES"
                f" (?{', ?' * len(_BUDGET_COLUMNS)}) ON CONFLICT(host, fix) DO UPDATE SET"
                " attempts=excluded.attempts, failures=excluded.failures,"
                " last_attempt=excluded.last_attempt, last_success=excluded.last_success,"
                f" settle_until=excluded.settle_until, {keep}", (host, *values))


def hub_fix_state(pb: Playbook, history: History, host: str) -> dict[str, Any]:
    """What the job carries for its fix pass: the hub's budget rows of ``host``."""
    if not has_fixes(pb):
        return {}
    return {"budgets": _budget_rows(history, host)}


class SiteFixPass(FixPass):
    """The fix pass at a worker: ``approve`` fixes are planned only (the approval and
    its audit live at the hub, which a worker cannot reach for a decision)."""

    def __init__(self, *args: Any, site: str, approve: set[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.site, self.approve = site, approve
        self.audit_mark = 0

    def _trigger(self, finished: FinishedHost, b: Binding, result: Result,
                 audit: AuditLog) -> FixOutcome:
        out = super()._trigger(finished, b, result, audit)
        if id(b) in self.approve and out.outcome == "planned" and not finished.check_mode:
            what = (out.plan or {}).get("summary") or out.summary
            out.summary = (f"plan only: {what} (fixes with approval do not run through "
                           f"site {self.site}'s workers)")
        return out


def worker_fix_pass(pb: Playbook, plugins: PluginSystem, history: History, *, site: str,
                    host: str, actor: str, state: dict[str, Any]) -> SiteFixPass | None:
    """The fix pass for one job at the worker, its budgets loaded from the hub's rows."""
    if not has_fixes(pb):
        return None
    from upkeeper.remediation.registry import FixRegistry
    from upkeeper.remediation.spec import bindings

    found, approve = [], set()
    for b in bindings(pb, FixRegistry.from_plugins(plugins)):
        if b.tier == "approve":
            b = dataclasses.replace(b, spec=b.spec.model_copy(update={"tier": "never"}))
            approve.add(id(b))
        found.append(b)
    with history.transaction() as conn:  # the hub's word replaces what this worker had
        Budgets(history)
        conn.execute("DELETE FROM remediation_budget WHERE host=?", (host,))
    _put_budget_rows(history, host, list(state.get("budgets") or []))
    fix_pass = SiteFixPass(history, found, actor=actor, site=site, approve=approve)
    AuditLog(history)  # the table, before asking for its last record
    rows = history.query("SELECT max(seq) AS seq FROM remediation_audit")
    fix_pass.audit_mark = int(rows[0]["seq"] or 0) if rows else 0
    return fix_pass


def collect(fix_pass: SiteFixPass, history: History, host: str) -> dict[str, Any]:
    """What goes back to the hub with the job's result."""
    records = [r for r in AuditLog(history).records(host=host)
               if r.seq > fix_pass.audit_mark]
    return {
        "audit": [{"ts": r.ts.timestamp(), "kind": r.kind, "actor": r.actor,
                   "subject": r.subject, "host": r.host, "client": r.client,
                   "data": r.data} for r in sorted(records, key=lambda r: r.seq)],
        "budgets": _budget_rows(history, host),
        "outcomes": [o.to_dict() for o in fix_pass.outcomes],
    }


def ingest_remediation(history: History, audit: AuditLog, *, site: str, worker: str,
                       host: str, remediation: dict[str, Any]) -> int:
    """Append a result's audit records at the hub and store its budget rows (call it
    inside the transaction that accepted the result); the number of records appended."""
    added = 0
    for rec in remediation.get("audit") or []:
        if not isinstance(rec, dict) or rec.get("host") != host:
            log.error("site %s: dropped an audit record about another host than %s", site,
                      host)
            continue
        raw = rec.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        try:
            audit.append(str(rec.get("kind", "")), str(rec.get("actor", "")),
                         str(rec.get("subject", "")),
                         {**data, "site": site, "worker": worker, "worker_ts": rec.get("ts")},
                         host=host, client=str(rec.get("client") or "") or None)
        except AuditError as exc:
            log.error("site %s: dropped an audit record for %s: %s", site, host, exc)
            continue
        added += 1
    rows = remediation.get("budgets")
    if isinstance(rows, list):
        _put_budget_rows(history, host, rows, keep_quarantine=True)
    return added
