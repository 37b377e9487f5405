"""The dashboard as a newcomer meets it after a few runs of today: the monthly report
offered first is one that has results, and runs of the same minutes can be told apart."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.web.fleetdata import result
from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import RunRecord, Status
from upkeeper.store.history import History
from upkeeper.web.app import create_app
from upkeeper.web.site import WebConfig


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[History, TestClient]]:
    """Three runs of the last few seconds, nothing earlier."""
    history = History(tmp_path / "history.sqlite3")
    history.set_state("web1", *CLIENT_STATE, "acme")
    now = datetime.now(timezone.utc)
    for n in range(3):
        run = RunRecord(f"20261206T0452{n}0Z-00000{n}", "daily", started=now,
                        meta={"clients": {"web1": "acme"}})
        history.start_run(run)
        history.add_result(run.run_id, result("web1", "disk.usage", Status.OK, "/ 20% used",
                                              now, {"/:used_pct": 20.0}))
        run.finished = now
        history.finish_run(run)
    with TestClient(create_app(history, WebConfig()), base_url="http://127.0.0.1:8470",
                    follow_redirects=False) as c:
        yield history, c
    history.close()


def test_report_offered_first_has_results(fresh: tuple[History, TestClient]) -> None:
    _history, client = fresh
    page = client.get("/clients/acme").text
    form = page[page.index('action="/clients/acme/report"'):]
    months = re.findall(r"<option>(\d{4}-\d\d)</option>", form)
    this_month = datetime.now(timezone.utc).strftime("%Y-%m")
    assert months == [this_month]  # no month without a result is offered
    got = client.get(f"/clients/acme/report?month={months[0]}")
    assert got.status_code == 200 and "web1" in got.text


def test_runs_of_the_same_minute_are_told_apart(fresh: tuple[History, TestClient]) -> None:
    _history, client = fresh
    page = client.get("/runs").text
    shown = re.findall(r'<a href="/runs/[^"]+">([^<]+)</a>', page)
    assert len(shown) == 3 and len(set(shown)) == 3


def test_run_page_shows_check_mode_and_the_fixes_of_the_run(
        fresh: tuple[History, TestClient]) -> None:
    history, client = fresh
    now = datetime.now(timezone.utc)
    run = RunRecord("run-fix", "keep up", started=now, check_mode=True, meta={
        "clients": {"web1": "acme", "mail1": "globex"},
        "remediation": [
            {"host": "web1", "client": "acme", "check": "system.service",
             "name": "nginx up", "fix": "system.service.restart", "outcome": "planned",
             "summary": "would restart nginx (failed, dead) (check mode)"},
            {"host": "mail1", "client": "globex", "check": "system.service",
             "name": "postfix up", "fix": "system.service.restart", "outcome": "planned",
             "summary": "would restart postfix (failed, dead) (check mode)"}]})
    history.start_run(run)
    history.add_result(run.run_id, result("web1", "system.service", Status.CRIT,
                                          "nginx is failed (dead)", now))
    history.add_result(run.run_id, result("mail1", "system.service", Status.CRIT,
                                          "postfix is failed (dead)", now))
    run.finished = now
    history.finish_run(run)
    page = client.get("/runs/run-fix").text
    assert "check mode" in page
    assert "would restart nginx (failed, dead)" in page and "postfix" in page
    assert "system.service.restart" in page
    from tests.web.conftest import FAST_HASHER
    from upkeeper.web.auth import Users

    Users(history, hasher=FAST_HASHER).add("acme-v", "viewer", ("acme",), password="pw-1")
    with TestClient(create_app(history, WebConfig(hasher=FAST_HASHER)),
                    base_url="http://127.0.0.1:8470") as scoped:
        scoped.post("/login", data={"user": "acme-v", "password": "pw-1"})
        page = scoped.get("/runs/run-fix").text
        assert "would restart nginx" in page and "postfix" not in page


def test_no_client_page_offers_no_monthly_report(fresh: tuple[History, TestClient]) -> None:
    history, client = fresh
    now = datetime.now(timezone.utc)
    run = RunRecord("run-local", "quick", started=now)
    history.start_run(run)
    history.add_result("run-local", result("laptop", "system.uptime", Status.OK,
                                           "up 3 days", now))
    page = client.get("/clients/%28no%20client%29")
    assert page.status_code == 200 and "laptop" in page.text
    assert "Monthly report" not in page.text
    assert "Monthly report" in client.get("/clients/acme").text


def test_fleet_names_inventory_clients_never_checked(fresh: tuple[History, TestClient]
                                                     ) -> None:
    """With -i, a client of the inventory that nothing has checked yet is on the fleet
    page (a forgotten client is the one that matters), not silently missing."""
    from tests.web.conftest import FAST_HASHER
    from upkeeper.web.auth import Users

    history, _client = fresh
    inventory = {"web1": {"client": "acme"}, "fs1": {"client": "initech"},
                 "fs2": {"client": "initech"}, "laptop": {}}
    with TestClient(create_app(history, WebConfig(inventory=inventory, hasher=FAST_HASHER)),
                    base_url="http://127.0.0.1:8470") as c:
        page = c.get("/").text
        assert "No results yet" in page and "initech" in page and "fs1, fs2" in page
        Users(history, hasher=FAST_HASHER).add("acme-v", "viewer", ("acme",), password="pw-1")
        c.post("/login", data={"user": "acme-v", "password": "pw-1"})
        page = c.get("/").text
        assert "acme" in page and "initech" not in page and "fs1" not in page
