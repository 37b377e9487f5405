"""Approvals: pending, approve, deny, expiry (recorded as denied), consumption."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upkeeper.remediation.approvals import ApprovalError, Approvals, State
from upkeeper.store.history import History


def _queue(tmp_path: Path) -> tuple[Approvals, list[datetime]]:
    now = [datetime(2026, 3, 1, tzinfo=timezone.utc)]
    return Approvals(History(tmp_path / "h.sqlite3"), clock=lambda: now[0]), now


def _ask(q: Approvals, plan_hash: str = "p1", host: str = "web1"):
    return q.request(host=host, client="acme", check="svc", fix="service.restart",
                     plan={"service": "nginx"}, plan_hash=plan_hash, actor="schedule")


def test_request_is_idempotent_per_plan(tmp_path: Path) -> None:
    q, _ = _queue(tmp_path)
    a = _ask(q)
    assert _ask(q).id == a.id and _ask(q, "p2").id != a.id
    assert [p.id for p in q.pending(client="acme")] == [a.id, _ask(q, "p2").id]
    assert q.pending(client="other") == []


def test_approve_then_take_once(tmp_path: Path) -> None:
    q, _ = _queue(tmp_path)
    a = _ask(q)
    assert q.approve(a.id, "cli:root").state == State.APPROVED
    with pytest.raises(ApprovalError, match="approved"):
        q.approve(a.id, "cli:root")
    assert q.take(host="web1", check="svc", fix="service.restart", plan_hash="p2",
                  actor="x") is None
    assert q.take(host="web1", check="svc", fix="service.restart", plan_hash="p1",
                  actor="x") is not None
    assert q.take(host="web1", check="svc", fix="service.restart", plan_hash="p1",
                  actor="x") is None
    kinds = [r.kind for r in q.audit.records()]
    assert kinds == ["approval-requested", "approve"]


def test_deny_and_unknown(tmp_path: Path) -> None:
    q, _ = _queue(tmp_path)
    a = _ask(q)
    assert q.deny(a.id, "web:alice", "not now").reason == "not now"
    with pytest.raises(ApprovalError, match="denied"):
        q.approve(a.id, "cli:root")
    with pytest.raises(ApprovalError, match="no approval"):
        q.approve("nope", "cli:root")


def test_expired_is_denied_and_recorded(tmp_path: Path) -> None:
    q, now = _queue(tmp_path)
    a = _ask(q)
    now[0] += timedelta(hours=24)
    assert q.pending() == []
    assert q.get(a.id).state == State.EXPIRED
    with pytest.raises(ApprovalError, match="expired"):
        q.approve(a.id, "cli:root")
    assert [r.kind for r in q.audit.records()] == ["approval-requested", "expire"]
    assert q.audit.verify() == []


def _forge(tmp_path: Path, sql: str) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "h.sqlite3")
    conn.execute(sql)
    conn.commit()
    conn.close()


def _take(q: Approvals):
    return q.take(host="web1", check="svc", fix="service.restart", plan_hash="p1",
                  actor="schedule")


def test_an_approval_made_in_the_database_alone_is_not_taken(tmp_path: Path) -> None:
    """Someone who can write the database but not read the audit key sets a pending
    plan to approved: without an authentic approve record it is never applied."""
    q, _ = _queue(tmp_path)
    a = _ask(q)
    _forge(tmp_path, f"UPDATE remediation_approvals SET state='approved' WHERE id='{a.id}'")
    assert _take(q) is None
    assert q.audit.records(kinds=["refuse"])[-1].data["approval"] == a.id


def test_an_applied_approval_cannot_be_replayed(tmp_path: Path) -> None:
    q, _ = _queue(tmp_path)
    a = _ask(q)
    q.approve(a.id, "cli:root")
    taken = _take(q)
    assert taken is not None
    q.audit.append("apply-begin", "schedule", taken.subject, {"approval": a.id})
    _forge(tmp_path, f"UPDATE remediation_approvals SET state='approved' WHERE id='{a.id}'")
    assert _take(q) is None


def test_an_expiry_moved_in_the_database_does_not_count(tmp_path: Path) -> None:
    q, now = _queue(tmp_path)
    a = _ask(q)
    q.approve(a.id, "cli:root")
    _forge(tmp_path, "UPDATE remediation_approvals SET expires=expires+864000"
                     f" WHERE id='{a.id}'")
    now[0] += timedelta(hours=25)
    assert _take(q) is None
