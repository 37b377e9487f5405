"""Current state: latest result per (host, check) across playbooks, stale detection,
down hosts collapsed, worst status per host and client, and no scan of the results."""

from __future__ import annotations

from datetime import timedelta

from tests.monthly.helpers import at, clients, record
from upkeeper.models import Status
from upkeeper.monthly.state import STATE_SQL, current_state
from upkeeper.store.history import History

OK, WARN, CRIT, UNKNOWN = Status.OK, Status.WARN, Status.CRIT, Status.UNKNOWN


def test_latest_result_from_any_playbook_wins(history: History) -> None:
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", CRIT)], playbook="daily")
    record(history, at("2026-11-01 09:00"), [("web1", "disk.usage", OK)], playbook="adhoc")
    record(history, at("2026-11-01 03:00"), [("web1", "backup.restic", WARN)],
           playbook="backups")
    state = current_state(history, now=at("2026-11-01 10:00"))
    host = state.host("web1")
    assert host is not None
    by_check = {c.check: c for c in host.checks}
    assert by_check["disk.usage"].status is OK
    assert by_check["disk.usage"].playbook == "adhoc"
    assert by_check["disk.usage"].age == timedelta(hours=1)
    assert host.status is WARN and state.exit_code == 1


def test_late_older_result_does_not_replace_newer(history: History) -> None:
    record(history, at("2026-11-02 02:00"), [("web1", "disk.usage", OK)])
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", CRIT)])  # outbox drained
    state = current_state(history, now=at("2026-11-02 03:00"))
    assert [c.status for c in state.checks] == [OK]


def test_stale_from_recorded_schedule_period(history: History) -> None:
    daily = {"trigger": "schedule", "schedule_period": 86400.0}
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", OK)], meta=daily)
    fresh = current_state(history, now=at("2026-11-02 13:59"))
    assert not fresh.checks[0].stale
    assert fresh.checks[0].allowed_age == timedelta(hours=36)
    stale = current_state(history, now=at("2026-11-02 14:01"))
    check = stale.checks[0]
    assert check.stale and check.status is OK and check.effective is UNKNOWN
    assert stale.exit_code == 3
    assert current_state(history, now=at("2026-11-02 14:01")).problems_only().checks


def test_unscheduled_playbook_uses_default_and_caller_schedules(history: History) -> None:
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", OK)], playbook="adhoc")
    assert not current_state(history, now=at("2026-11-07 02:00")).checks[0].stale
    assert current_state(history, now=at("2026-11-08 03:00")).checks[0].stale
    hourly = current_state(history, now=at("2026-11-01 04:00"),
                           schedules={"adhoc": timedelta(hours=1)})
    assert hourly.checks[0].stale


def test_down_host_collapsed_and_clients_grouped(history: History) -> None:
    clients(history, {"web1": "acme", "db1": "acme", "mail": "globex"})
    record(history, at("2026-11-01 02:00"),
           [("web1", "disk.usage", OK), ("web1", "backup.restic", OK),
            ("db1", "disk.usage", WARN), ("mail", "disk.usage", OK)])
    record(history, at("2026-11-02 02:00"),
           [("web1", "disk.usage", UNKNOWN), ("web1", "backup.restic", UNKNOWN)],
           meta={"unreachable": {"web1": "connection refused"}}, summary="not run")
    state = current_state(history, now=at("2026-11-02 03:00"))
    assert [c.name for c in state.clients] == ["acme", "globex"]
    acme = state.client("acme")
    assert acme is not None and acme.status is UNKNOWN
    web1 = acme.hosts[0]
    assert web1.host == "web1" and web1.down and web1.down_reason == "connection refused"
    assert acme.counts["UNKNOWN"] == 2 and acme.counts["WARN"] == 1
    problems = state.problems_only()
    assert [c.name for c in problems.clients] == ["acme"]
    assert {h.host for h in problems.hosts} == {"web1", "db1"}
    only = current_state(history, client="globex", now=at("2026-11-02 03:00"))
    assert [h.host for h in only.hosts] == ["mail"] and only.exit_code == 0


def test_existing_database_is_backfilled(tmp_path) -> None:
    path = tmp_path / "h.sqlite3"
    h = History(path)
    record(h, at("2026-11-01 02:00"), [("web1", "disk.usage", CRIT)])
    record(h, at("2026-11-02 02:00"), [("web1", "disk.usage", OK)])
    h.query("SELECT 1")
    with h.transaction() as db:
        db.execute("DROP TABLE current")  # as a database from before the table existed
    h.close()
    again = History(path)
    assert [c.status for c in current_state(again, now=at("2026-11-02 03:00")).checks] == [OK]
    again.close()


def test_state_queries_use_indexes_and_never_read_results(history: History) -> None:
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", OK)])

    def plan(sql: str, *args: object) -> str:
        return " | ".join(r[3] for r in history.query("EXPLAIN QUERY PLAN " + sql, args))

    assert plan(STATE_SQL) == "SCAN current"  # the small latest-result table only
    assert plan(STATE_SQL + " WHERE host IN (?)", "web1") == \
        "SEARCH current USING PRIMARY KEY (host=?)"
    assert "USING INDEX runs_playbook_started (playbook=?)" in plan(
        "SELECT json_extract(meta, '$.schedule_period') FROM runs WHERE playbook=?"
        " AND json_valid(meta) ORDER BY started DESC LIMIT 1", "daily")
    assert "USING INDEX sqlite_autoindex_runs_1 (id=?)" in plan(
        "SELECT id, playbook FROM runs WHERE id IN (?)", "r1")


def test_prune_takes_checks_whose_latest_result_it_deletes_out_of_state(
        history: History) -> None:
    from upkeeper.store.retention import prune

    record(history, at("2025-01-01 02:00"), [("old", "disk.usage", CRIT)])
    record(history, at("2026-11-01 02:00"), [("web1", "disk.usage", OK)])
    prune(history, at("2026-01-01 00:00"), reclaim=False)
    assert [c.host for c in current_state(history, now=at("2026-11-02 00:00")).checks] == [
        "web1"]


def test_read_only_old_database_is_left_as_it_is(tmp_path) -> None:
    import sqlite3

    from upkeeper.store.current import ensure_current

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE results (id INTEGER); CREATE TABLE runs (id TEXT,"
                     " playbook TEXT, started REAL)")
    db.close()
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # as for a read-only file
    ensure_current(ro)
    assert ro.execute("SELECT 1 FROM sqlite_master WHERE name='current'").fetchall() == []
    ro.close()


def test_hosts_without_a_client_come_after_the_clients_of_equal_status(
        history: History) -> None:
    clients(history, {"web1": "acme", "mail": "globex"})
    record(history, at("2026-11-01 02:00"),
           [("web1", "disk.usage", OK), ("mail", "disk.usage", OK),
            ("laptop", "disk.usage", OK)])
    state = current_state(history, now=at("2026-11-01 03:00"))
    assert [c.name for c in state.clients] == ["acme", "globex", "(no client)"]


def test_state_of_the_hosts_without_a_client(history: History) -> None:
    """`state --client "(no client)"` shows what the table labels so."""
    clients(history, {"web1": "acme"})
    record(history, at("2026-11-01 02:00"),
           [("web1", "disk.usage", OK), ("laptop", "disk.usage", WARN)])
    state = current_state(history, client="(no client)", now=at("2026-11-01 03:00"))
    assert [h.host for h in state.hosts] == ["laptop"] and state.exit_code == 1
