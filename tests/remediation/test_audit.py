"""The audit trail: append-only, hash-chained, edits and removals detected."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from upkeeper.remediation.audit import AuditError, AuditLog
from upkeeper.store.history import History


def _log(tmp_path: Path) -> tuple[History, AuditLog]:
    history = History(tmp_path / "h.sqlite3")
    return history, AuditLog(history)


def test_append_and_read_back(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    a = log.append("plan", "schedule", "web1/svc/restart", {"plan": {"service": "nginx"}},
                   host="web1", client="acme")
    b = log.append("mute", "web:alice", "web1/disk.usage", {"until": "tomorrow"},
                   host="web1", client="acme")
    assert (a.seq, b.seq) == (1, 2) and b.prev_hash == a.hash
    assert [r.kind for r in log.records(host="web1")] == ["plan", "mute"]
    assert [r.kind for r in log.records(kinds=["mute"])] == ["mute"]
    assert log.records(client="other") == []
    assert log.records(newest_first=True, limit=1)[0].seq == 2
    assert log.verify() == []
    # A second AuditLog on the same database (another process) continues the chain.
    again = AuditLog(History(tmp_path / "h.sqlite3"))
    assert again.append("verify", "schedule", "x").seq == 3
    assert again.verify() == [] and log.verify() == []


def test_redactor_applies_to_data(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    log = AuditLog(history, redact=lambda d: {k: "***" if k == "pw" else v
                                              for k, v in d.items()})
    log.append("apply", "schedule", "s", {"pw": "hunter2", "ok": 1})
    raw = history.query("SELECT data FROM remediation_audit")[0][0]
    assert "hunter2" not in raw


def test_bad_kind_and_data_refused(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    with pytest.raises(AuditError):
        log.append("Drop Table", "x", "y")
    with pytest.raises(AuditError):
        log.append("plan", "x", "y", {"obj": object()})
    assert log.records() == []


def test_update_and_delete_refused_by_the_database(tmp_path: Path) -> None:
    history, log = _log(tmp_path)
    log.append("plan", "a", "s")
    for sql in ("UPDATE remediation_audit SET actor='me'", "DELETE FROM remediation_audit"):
        with pytest.raises(Exception, match="append-only"):
            with history.transaction() as db:
                db.execute(sql)


def _tamper(path: Path, *sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER remediation_audit_no_update")
    conn.execute("DROP TRIGGER remediation_audit_no_delete")
    for s in sql:
        conn.execute(s)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(("sql", "found"), [
    ("UPDATE remediation_audit SET data='{\"exit\":0}' WHERE seq=2", "record 2"),
    ("UPDATE remediation_audit SET actor='nobody' WHERE seq=1", "record 1"),
    ("DELETE FROM remediation_audit WHERE seq=2", "record 2 removed"),
    ("DELETE FROM remediation_audit WHERE seq=3", "removed from the end"),
    ("UPDATE remediation_audit SET ts=ts+1 WHERE seq=3", "record 3"),
])
def test_verify_detects_edits_and_removals(tmp_path: Path, sql: str, found: str) -> None:
    history, log = _log(tmp_path)
    for i in range(3):
        log.append("apply", "schedule", f"h/c/f{i}", {"exit": i})
    assert log.verify() == []
    history.close()
    _tamper(tmp_path / "h.sqlite3", sql)
    problems = AuditLog(History(tmp_path / "h.sqlite3")).verify()
    assert any(found in p for p in problems), problems


def test_rewriting_the_chain_without_the_key_is_detected(tmp_path: Path) -> None:
    history, log = _log(tmp_path)
    log.append("apply", "schedule", "s", {"exit": 1})
    history.close()
    key = tmp_path / "h.sqlite3.audit-key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    key.unlink()  # an attacker re-keys: a new key makes every old hash wrong
    problems = AuditLog(History(tmp_path / "h.sqlite3")).verify()
    assert "was missing" in problems[0] and any("edited" in p for p in problems)
    again = AuditLog(History(tmp_path / "h.sqlite3")).verify()  # the new key stays
    assert again and all("edited" in p for p in again)


def test_injected_clock_and_time_filters(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite3")
    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    log = AuditLog(history, clock=lambda: now[0])
    log.append("plan", "a", "s")
    now[0] += timedelta(days=2)
    log.append("plan", "a", "s")
    assert len(log.records(since=datetime(2026, 1, 2, tzinfo=timezone.utc))) == 1


def test_plain_connection(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.sqlite3", isolation_level=None)
    log = AuditLog(conn)
    log.append("mute", "web:bob", "h1/disk")
    assert [r.actor for r in log.records()] == ["web:bob"] and log.verify() == []


@pytest.mark.parametrize("sql", [
    # The tail cut and the head table moved back to the new last record: both are plain
    # rows, so someone who can write the database (but not read the key) can do it.
    ("DELETE FROM remediation_audit WHERE seq>1",
     "UPDATE remediation_audit_head SET seq=1, hash=(SELECT hash FROM remediation_audit"
     " WHERE seq=1)"),
    ("DELETE FROM remediation_audit", "DELETE FROM remediation_audit_head"),
])
def test_cutting_the_tail_and_its_head_row_is_detected(tmp_path: Path,
                                                        sql: tuple[str, str]) -> None:
    history, log = _log(tmp_path)
    for i in range(3):
        log.append("apply", "schedule", f"h/c/f{i}", {"exit": i})
    history.close()
    _tamper(tmp_path / "h.sqlite3", *sql)
    problems = AuditLog(History(tmp_path / "h.sqlite3")).verify()
    assert any("removed from the end" in p for p in problems), problems


def test_the_head_file_keeps_up_with_other_writers(tmp_path: Path) -> None:
    _, log = _log(tmp_path)
    other = AuditLog(History(tmp_path / "h.sqlite3"))
    log.append("plan", "a", "s")
    other.append("plan", "b", "s")
    log.append("plan", "a", "s")
    head = tmp_path / "h.sqlite3.audit-head"
    assert oct(head.stat().st_mode & 0o777) == "0o600"
    assert head.read_text().split()[0] == "3"
    assert log.verify() == [] and other.verify() == []
