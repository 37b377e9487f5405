"""Actions on the dashboard: mutes the after-run alerting honours, acknowledgements and
fix approvals, each recorded in the audit trail with who did it."""

from __future__ import annotations

import http.client
import re
from datetime import datetime, timedelta, timezone

from starlette.testclient import TestClient

from tests.web.fleetdata import NOW, result
from upkeeper.after_run.alerts import decide, muted_until
from upkeeper.models import Status
from upkeeper.remediation.approvals import Approvals, State
from upkeeper.remediation.audit import AuditLog
from upkeeper.store.history import History
from upkeeper.web.actions import Actions
from upkeeper.web.auth import LOCAL_USER
from upkeeper.web.server import Bind, WebServer


def csrf_of(client: TestClient, page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(page).text)
    assert found
    return found.group(1)


def problems_now() -> list:
    return [result("mail1", "disk.usage", Status.CRIT, "/ 97% used", NOW),
            result("db1", "patching.status", Status.WARN, "2 pending", NOW)]


def test_a_mute_silences_alerts_until_it_ends(fleet_history: History) -> None:
    actions = Actions(fleet_history)
    now = datetime.now(timezone.utc)
    actions.mute(LOCAL_USER, "mail1", "globex", "disk.usage", 3600, "disk swap today",
                 now=now.timestamp())
    told = decide(problems_now(), fleet_history, "ops", now=now)
    assert [(a.result.host, a.result.check) for a in told] == [("db1", "patching.status")]
    later = now + timedelta(hours=1, seconds=1)
    assert muted_until(fleet_history, "mail1", "disk.usage", later) is None
    told = decide(problems_now(), fleet_history, "ops", now=later)
    assert {a.result.host for a in told} == {"mail1", "db1"}


def test_a_host_mute_silences_every_check_of_the_host(fleet_history: History) -> None:
    now = datetime.now(timezone.utc)
    Actions(fleet_history).mute(LOCAL_USER, "db1", "acme", None, 600, "", now=now.timestamp())
    told = decide(problems_now(), fleet_history, "ops", now=now)
    assert [a.result.host for a in told] == ["mail1"]


def test_mute_form_is_audited_and_shown(fleet_history: History, client: TestClient) -> None:
    token = csrf_of(client, "/hosts/mail1")
    response = client.post("/hosts/mail1/mute", data={
        "csrf": token, "check": "disk.usage", "period": "4h", "reason": "new disk ordered"})
    assert response.status_code == 303
    assert muted_until(fleet_history, "mail1", "disk.usage", datetime.now(timezone.utc))
    page = client.get("/hosts/mail1").text
    assert "Muted" in page and "new disk ordered" in page
    (rec,) = AuditLog(fleet_history).records(kinds=["mute"])
    assert (rec.actor, rec.subject, rec.host, rec.client) == (
        "web:local", "mail1/disk.usage", "mail1", "globex")
    assert rec.data["reason"] == "new disk ordered"
    assert AuditLog(fleet_history).verify() == []
    assert client.post("/hosts/mail1/mute", data={"csrf": token, "period": "99y"}
                       ).status_code == 400


def test_acknowledge_problem(fleet_history: History, client: TestClient) -> None:
    token = csrf_of(client, "/hosts/mail1")
    assert "Acknowledge" in client.get("/hosts/mail1").text
    response = client.post("/hosts/mail1/ack", data={
        "csrf": token, "check": "disk.usage", "status": "CRIT", "note": "on it"})
    assert response.status_code == 303
    page = client.get("/hosts/mail1").text
    assert "Acknowledged by local" in page and "on it" in page
    (rec,) = AuditLog(fleet_history).records(kinds=["acknowledge"])
    assert rec.subject == "mail1/disk.usage" and rec.data["status"] == "CRIT"


def request_fix(history: History, host: str = "db1", client: str = "acme") -> str:
    approval = Approvals(history).request(
        host=host, client=client, check="patching.status", fix="patching.apply",
        plan={"summary": "install 2 security updates", "packages": ["openssl"]},
        plan_hash="h1", actor="schedule")
    return approval.id


def test_approve_a_pending_fix(fleet_history: History, client: TestClient) -> None:
    fix = request_fix(fleet_history)
    page = client.get("/actions").text
    assert "install 2 security updates" in page and f"/fixes/{fix}/approve" in page
    token = csrf_of(client, "/actions")
    assert client.post(f"/fixes/{fix}/approve", data={"csrf": token}).status_code == 303
    approval = Approvals(fleet_history).get(fix)
    assert (approval.state, approval.decided_by) == (State.APPROVED, "web:local")
    assert [r.kind for r in AuditLog(fleet_history).records(subject=approval.subject)] == [
        "approval-requested", "approve"]
    # Decided already: a second click says so instead of failing silently.
    again = client.post(f"/fixes/{fix}/approve", data={"csrf": token})
    assert again.status_code == 409 and "approved" in again.text
    assert client.post("/fixes/nosuch/approve", data={"csrf": token}).status_code == 404


def test_deny_a_pending_fix_with_a_reason(fleet_history: History,
                                         client: TestClient) -> None:
    fix = request_fix(fleet_history)
    token = csrf_of(client, "/actions")
    assert client.post(f"/fixes/{fix}/deny", data={"csrf": token, "reason": "audit week"}
                       ).status_code == 303
    approval = Approvals(fleet_history).get(fix)
    assert (approval.state, approval.reason) == (State.DENIED, "audit week")


def test_scoped_operator_sees_and_decides_only_their_fixes(fleet_history: History) -> None:
    from tests.web.conftest import FAST_HASHER
    from upkeeper.web.app import create_app
    from upkeeper.web.auth import Users

    Users(fleet_history, hasher=FAST_HASHER).add("acme-ops", "operator", ("acme",),
                                                 password="pw")
    theirs, other = request_fix(fleet_history), request_fix(fleet_history, "mail1", "globex")
    with TestClient(create_app(fleet_history), base_url="http://127.0.0.1:8470",
                    follow_redirects=False) as c:
        c.post("/login", data={"user": "acme-ops", "password": "pw"})
        page = c.get("/actions").text
        assert theirs in page and other not in page and "mail1" not in page
        token = csrf_of(c, "/actions")
        assert c.post(f"/fixes/{other}/approve", data={"csrf": token}).status_code == 404
        assert Approvals(fleet_history).get(other).state == State.PENDING
        assert c.post(f"/fixes/{theirs}/approve", data={"csrf": token}).status_code == 303


def test_monthly_report_download(fleet_history: History, client: TestClient) -> None:
    month = (NOW - timedelta(days=1)).strftime("%Y-%m")  # the newest run's month
    assert f'<option>{month}</option>' in client.get("/clients/acme").text
    response = client.get(f"/clients/acme/report?month={month}")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert "sandbox" in response.headers["content-security-policy"]
    assert "acme" in response.text and "web1" in response.text
    md = client.get(f"/clients/acme/report?month={month}&format=md")
    assert md.headers["content-type"].startswith("text/markdown")
    assert client.get("/clients/acme/report?month=1999-01").status_code == 404
    assert client.get("/clients/acme/report?month=garbage").status_code == 404
    assert client.get(f"/clients/nosuch/report?month={month}").status_code == 404


def test_unmute_ends_a_mute_early(fleet_history: History, client: TestClient) -> None:
    token = csrf_of(client, "/hosts/mail1")
    client.post("/hosts/mail1/mute", data={"csrf": token, "check": "", "period": "1d"})
    now = datetime.now(timezone.utc)
    assert muted_until(fleet_history, "mail1", "disk.usage", now)
    assert "Unmute" in client.get("/hosts/mail1").text
    assert client.post("/hosts/mail1/unmute", data={"csrf": token, "check": "*"}
                       ).status_code == 303
    assert muted_until(fleet_history, "mail1", "disk.usage", now) is None
    assert [r.kind for r in AuditLog(fleet_history).records()] == ["mute", "unmute"]


def test_host_page_shows_maintenance_windows(fleet_history: History) -> None:
    from upkeeper.web.app import create_app
    from upkeeper.web.site import WebConfig

    config = WebConfig(inventory={"web1": {"maintenance_windows": ["Sat 22:00-Sun 04:00"],
                                           "timezone": "Europe/London"}})
    with TestClient(create_app(fleet_history, config),
                    base_url="http://127.0.0.1:8470") as c:
        page = c.get("/hosts/web1").text
        assert "Maintenance windows" in page and "Europe/London" in page
        assert "Sat " in page and "22:00" in page
        assert "Maintenance windows" not in c.get("/hosts/db1").text


def test_hosts_without_a_client_have_a_page_of_their_own(fleet_history: History,
                                                         client: TestClient) -> None:
    from upkeeper.models import RunRecord

    run = RunRecord("run-local", "quick", started=NOW)
    fleet_history.start_run(run)
    fleet_history.add_result("run-local", result("laptop", "system.uptime", Status.OK,
                                                 "up 3 days", NOW, {"uptime_days": 3.0}))
    fleet = client.get("/").text
    assert 'href="/clients/%28no%20client%29"' in fleet
    page = client.get("/clients/%28no%20client%29")
    assert page.status_code == 200 and "laptop" in page.text and "web1" not in page.text


def test_report_file_name_is_built_from_the_month_as_understood(
        fleet_history: History) -> None:
    """``month`` is stripped before it is parsed; the download's file name must use that
    (a raw ``2026-11\\n`` put a line break into a header: the real server answered 500)."""
    server = WebServer(fleet_history, Bind("127.0.0.1", 0))
    server.start()
    try:
        month = (NOW - timedelta(days=1)).strftime("%Y-%m")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("GET", f"/clients/acme/report?month={month}%0A",
                     headers={"Host": f"127.0.0.1:{server.port}"})
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 200
        assert response.getheader("content-disposition") == (
            f'attachment; filename="acme-{month}.html"')
    finally:
        server.stop()
