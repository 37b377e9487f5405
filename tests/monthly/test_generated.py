"""A generated history (bench/history_gen.py at a small size) through the real state
query and the monthly report: the generator's ``current`` table is what the store would
keep, a down host is one line in state and one incident in the report, and fixes come
from the remediation audit trail when the history has one."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from tests.monthly.helpers import at
from upkeeper.models import Status
from upkeeper.monthly.fixes import audit_fixes
from upkeeper.monthly.period import month_period
from upkeeper.monthly.render import render_client_report, summary_lines
from upkeeper.monthly.report import build_client_report
from upkeeper.monthly.state import current_state
from upkeeper.store.history import History

ROOT = Path(__file__).resolve().parents[2]
END = at("2026-12-01 12:00")


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("history_gen", ROOT / "bench/history_gen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["history_gen"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("gen") / "history.sqlite3"
    made = _gen().generate(path, hosts=12, checks=8, days=60, clients=3, end=END,
                           incident_rate=0.01)
    return path, made


def test_generated_current_table_is_what_the_store_keeps(generated, tmp_path) -> None:
    path, made = generated
    h = History(path, create=False)
    assert made.results == 12 * 8 * 60
    kept = {tuple(r) for r in h.query("SELECT * FROM current")}
    with h.transaction() as db:
        db.execute("DELETE FROM current")
    h.close()
    again = History(path, create=False)  # the store's backfill on open
    assert {tuple(r) for r in again.query("SELECT * FROM current")} == kept
    again.close()


def test_generated_month_report_and_state(generated) -> None:
    path, _made = generated
    h = History(path, create=False)
    state = current_state(h, now=END)
    assert len(state.clients) == 3 and len(state.checks) == 12 * 8
    assert not any(c.stale for c in state.checks)
    assert current_state(h, now=END + timedelta(days=2)).checks[0].stale
    # The generator takes one host per client down for three days mid-history.
    period = month_period("2026-11")
    report = build_client_report(h, "client00", period, now=END)
    down = [i for i in report.incidents if i.check == "*"]
    assert len(down) == 1 and re.fullmatch(r"all [3-8] checks", down[0].name)
    assert down[0].host == "h000.c00" and down[0].start == at("2026-11-01 02:00")
    assert down[0].duration(report.until) == timedelta(days=3)
    assert down[0].summary == "not run: connection refused"
    assert report.patches and report.backups
    text = " ".join(summary_lines(report))
    assert "We checked 4 systems 960 times (32 checks) in November 2026" in text
    md = render_client_report(report, "md")
    assert f"| {down[0].name} |" in md
    h.close()


def test_fixes_from_the_remediation_audit_trail(history: History) -> None:
    assert audit_fixes(history) is None  # remediation never ran: the report says so
    with history.transaction() as db:
        # The columns of upkeeper.remediation.audit.AUDIT_SCHEMA that the reader uses.
        db.execute("CREATE TABLE remediation_audit (seq INTEGER PRIMARY KEY, ts REAL NOT NULL,"
                   " kind TEXT NOT NULL, actor TEXT NOT NULL, subject TEXT NOT NULL, host TEXT,"
                   " client TEXT, data TEXT NOT NULL, prev_hash TEXT NOT NULL,"
                   " hash TEXT NOT NULL)")
        subject = "web1/svc/system.service.restart"
        rows = [
            (at("2026-11-03 02:01"), "plan", {"plan": {"summary": "restart nginx"}}),
            (at("2026-11-03 02:02"), "verify", {"verified": True, "trigger": {"name": "svc"}}),
            (at("2026-11-09 02:02"), "verify", {"verified": False, "reason": "still down"}),
            (at("2026-12-03 02:02"), "verify", {"verified": True}),  # next month
        ]
        for seq, (when, kind, data) in enumerate(rows, 1):
            db.execute("INSERT INTO remediation_audit VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (seq, when.timestamp(), kind, "upkeeper", subject, "web1", "acme",
                        json.dumps(data), "0" * 64, "x"))
    source = audit_fixes(history)
    assert source is not None
    nov = month_period("2026-11")
    done = source(["web1", "db1"], nov.start, nov.end)
    assert [(f.host, f.check, f.what, f.outcome) for f in done] == [
        ("web1", "svc", "restart nginx", "fixed and verified"),
        ("web1", "svc", "restart nginx", "not fixed: still down")]
    assert done[0].when == at("2026-11-03 02:02")
    assert Status.OK  # statuses untouched by the reader
