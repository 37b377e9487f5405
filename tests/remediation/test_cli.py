"""The commands as a user runs them (a new process each): `upkeeper run` with a fix,
`fixes list/show/approve/deny/release/available`, `audit list/verify`, `validate`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.remediation.standins import StandInSystemd

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

PB = """name: keep nginx up
hosts: localhost
checks:
  - check: system.service
    params: {service: nginx}
    fix: {fix: system.service.restart, tier: approve, safe_anytime: true}
"""


def upk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ), cwd=ROOT)


def test_approve_flow_and_audit_verify(tmp_path, state_dir, systemd: StandInSystemd):
    book = tmp_path / "pb.yml"
    book.write_text(PB)
    systemd.set("nginx", "failed")
    first = upk("run", str(book), "--format", "json")
    assert first.returncode == 2, first.stderr
    assert systemd.restarts() == 0
    listed = json.loads(upk("fixes", "list", "--format", "json").stdout)
    [pending] = listed["pending"]
    assert pending["plan"]["commands"] == [["systemctl", "restart", "--", "nginx"]]
    shown = upk("fixes", "show", pending["id"])
    assert "systemctl restart -- nginx" in shown.stdout
    assert upk("fixes", "approve", pending["id"]).returncode == 0
    again = upk("fixes", "approve", pending["id"])
    assert again.returncode == 3 and "approved" in again.stderr
    upk("run", str(book))
    assert systemd.state("nginx") == "active" and systemd.restarts() == 1
    kinds = [r["kind"] for r in json.loads(upk("audit", "list", "--format", "json").stdout)]
    assert kinds[:4] == ["verify", "apply", "apply-begin", "plan"]
    ok = upk("audit", "verify")
    assert ok.returncode == 0 and "chain intact" in ok.stdout
    db = sqlite3.connect(state_dir / "history.sqlite3")
    db.execute("DROP TRIGGER remediation_audit_no_delete")
    db.execute("DELETE FROM remediation_audit WHERE kind='approve'")
    db.commit()
    db.close()
    bad = upk("audit", "verify")
    assert bad.returncode == 2 and "removed" in bad.stderr


def test_deny_and_available(tmp_path, state_dir, systemd):
    book = tmp_path / "pb.yml"
    book.write_text(PB)
    systemd.set("nginx", "failed")
    upk("run", str(book))
    [pending] = json.loads(upk("fixes", "list", "--format", "json").stdout)["pending"]
    assert upk("fixes", "deny", pending["id"], "--reason", "audit week").returncode == 0
    assert json.loads(upk("fixes", "list", "--format", "json").stdout)["pending"] == []
    fixes = json.loads(upk("fixes", "available", "--format", "json").stdout)
    assert "system.service.restart" in {f["name"] for f in fixes}


def test_validate_names_the_line_of_a_bad_fix(tmp_path):
    book = tmp_path / "pb.yml"
    book.write_text(PB.replace("system.service.restart, tier: approve",
                               "system.service.restar, audit: false"))
    res = upk("validate", str(book))
    assert res.returncode == 3
    assert f"{book}:6" in res.stderr + res.stdout
    run = upk("run", str(book))
    assert run.returncode == 3 and "unknown key 'audit'" in run.stderr


def test_check_mode_shows_the_plan_and_changes_nothing(tmp_path, state_dir, systemd):
    book = tmp_path / "pb.yml"
    book.write_text(PB.replace("tier: approve", "tier: auto"))
    systemd.set("nginx", "failed")
    res = upk("run", "--check", str(book))
    assert "fix system.service.restart on localhost (system.service): planned" in res.stdout
    assert "would run: systemctl restart -- nginx" in res.stdout
    assert systemd.state("nginx") == "failed" and systemd.restarts() == 0
    doc = json.loads(upk("run", "--check", str(book), "--format", "json").stdout)
    assert doc["remediation"][0]["outcome"] == "planned"
    kinds = [r["kind"] for r in json.loads(upk("audit", "list", "--format", "json").stdout)]
    assert kinds == ["check-plan", "check-plan"]


def test_fixed_line_says_fixed_once(tmp_path, state_dir, systemd):
    book = tmp_path / "pb.yml"
    book.write_text(PB.replace("tier: approve", "tier: auto"))
    systemd.set("nginx", "failed")
    res = upk("run", str(book))
    assert systemd.state("nginx") == "active"
    line = next(x for x in res.stdout.splitlines() if x.startswith("fix "))
    assert line == ("fix system.service.restart on localhost (system.service): fixed: "
                    "restart nginx (failed, dead)")


def test_audit_verify_json(tmp_path, state_dir, systemd):
    book = tmp_path / "pb.yml"
    book.write_text(PB.replace("tier: approve", "tier: auto"))
    systemd.set("nginx", "failed")
    upk("run", str(book))
    ok = upk("audit", "verify", "--format", "json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["intact"] is True and doc["records"] == 4 and doc["problems"] == []
    db = sqlite3.connect(state_dir / "history.sqlite3")
    db.execute("DROP TRIGGER remediation_audit_no_update")
    db.execute("UPDATE remediation_audit SET actor='someone' WHERE kind='apply'")
    db.commit()
    db.close()
    bad = upk("audit", "verify", "--format", "json")
    assert bad.returncode == 2
    doc = json.loads(bad.stdout)
    assert doc["intact"] is False and doc["problems"] and doc["exit_code"] == 2


def test_fixes_list_in_a_state_dir_without_history_says_so(tmp_path):
    """A mistyped --state-dir is an error, not "no plans wait for approval" (and it
    creates nothing there)."""
    wrong = tmp_path / "typo"
    res = upk("--state-dir", str(wrong), "fixes", "list", "--format", "json")
    assert res.returncode == 3
    assert "no history database" in json.loads(res.stdout)["error"]
    assert upk("--state-dir", str(wrong), "fixes", "approve", "abc").returncode == 3
    assert not wrong.exists()


def test_fixes_list_shows_approved_plans_and_filters_quarantines_by_client(
        tmp_path, state_dir, systemd):
    """An approved plan waits for the next run: the list says so (it said "no plans
    wait for approval"); --client also narrows the quarantined fixes."""
    from datetime import timedelta

    from upkeeper.after_run.clients import CLIENT_STATE
    from upkeeper.remediation.budget import Budgets
    from upkeeper.store.history import History

    book = tmp_path / "pb.yml"
    book.write_text(PB)
    systemd.set("nginx", "failed")
    upk("run", str(book))
    [pending] = json.loads(upk("fixes", "list", "--format", "json").stdout)["pending"]
    assert upk("fixes", "approve", pending["id"]).returncode == 0
    doc = json.loads(upk("fixes", "list", "--format", "json").stdout)
    assert doc["pending"] == [] and [a["id"] for a in doc["approved"]] == [pending["id"]]
    table = upk("fixes", "list").stdout
    assert pending["id"] in table and "approved" in table
    history = History(state_dir / "history.sqlite3")
    history.set_state("mail1", *CLIENT_STATE, "globex")
    budgets = Budgets(history)
    budgets.begin("mail1", "disk.cleanup", timedelta(hours=1))
    assert budgets.finish("mail1", "disk.cleanup", succeeded=False, settle=0,
                          quarantine_after=1)
    history.close()
    mine = json.loads(upk("fixes", "list", "--client", "acme", "--format", "json").stdout)
    assert mine["quarantined"] == []
    theirs = json.loads(upk("fixes", "list", "--client", "globex", "--format", "json").stdout)
    assert [q["host"] for q in theirs["quarantined"]] == ["mail1"]
