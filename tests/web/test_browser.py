"""The dashboard in a real browser (Debian's chromium and chromium-driver, driven by
selenium): log in, fleet, a client and a host with charts, approve a pending fix, and a
running run's results appearing without a reload; a screenshot of each page is saved
to ``$UPKEEPER_ARTEFACTS`` (or the test's temp dir)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import wait_for
from tests.web.conftest import FAST_HASHER
from tests.web.fleetdata import NOW, fill, result, start_running
from upkeeper.models import Status
from upkeeper.remediation.approvals import Approvals, State
from upkeeper.store.history import History
from upkeeper.web.auth import Users
from upkeeper.web.server import Bind, WebServer

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def _missing() -> None:
    why = "needs Debian's chromium and chromium-driver (.ci/apt-packages.txt)"
    if os.environ.get("CI"):
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def artefacts(tmp_path: Path) -> Path:
    root = os.environ.get("UPKEEPER_ARTEFACTS")
    out = Path(root) / "web" if root else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[WebServer, History, str]]:
    history = History(tmp_path / "history.sqlite3")
    fill(history, days=30)
    Users(history, hasher=FAST_HASHER).add("alice", "operator", password="alice-pw-1")
    fix = Approvals(history).request(
        host="db1", client="acme", check="patching.status", fix="patching.apply",
        plan={"summary": "install 2 security updates"}, plan_hash="p1", actor="schedule")
    server = WebServer(history, Bind("127.0.0.1", 0))
    server.start()
    yield server, history, fix.id
    server.stop()
    history.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM and DRIVER):
        _missing()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1000", "--no-first-run"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def shot(driver: Any, artefacts: Path, name: str) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 140, 600), 4000))
    driver.save_screenshot(str(artefacts / f"{name}.png"))


def text_of(driver: Any) -> str:
    return str(driver.find_element("tag name", "body").text)


def test_dashboard_in_a_browser(site: tuple[WebServer, History, str], browser: Any,
                                artefacts: Path) -> None:
    server, history, fix = site
    base = server.url.rstrip("/")
    b = browser

    b.get(base + "/")
    wait_for(lambda: "/login" in b.current_url, "the login page")
    shot(b, artefacts, "login")
    b.find_element("name", "user").send_keys("alice")
    b.find_element("name", "password").send_keys("alice-pw-1")
    b.find_element("css selector", "form.login button").click()
    wait_for(lambda: b.find_elements("css selector", "table.fleet"), "the fleet page")
    assert "alice (operator)" in text_of(b)
    assert [e.text for e in b.find_elements("css selector", "table.fleet td a")][:2] == [
        "globex", "mail1"]  # the client with a CRIT problem comes first
    shot(b, artefacts, "fleet")

    b.find_element("link text", "acme").click()
    wait_for(lambda: b.find_elements("css selector", "table.matrix"), "the client page")
    paths = b.find_elements("css selector", "svg.chart path.series")
    assert paths and paths[0].get_attribute("d").startswith("M")
    shot(b, artefacts, "client")

    b.find_element("css selector", "table.matrix th a[href='/hosts/db1']").click()
    wait_for(lambda: "/hosts/db1" in b.current_url, "the host page")
    assert b.find_elements("css selector", "svg.timeline rect")
    assert b.find_elements("css selector", "svg.chart path.series")
    assert "2 security updates pending" in text_of(b)
    shot(b, artefacts, "host")

    b.get(base + "/actions")
    shot(b, artefacts, "actions-pending")
    b.find_element("css selector", f"form[action='/fixes/{fix}/approve'] button").click()
    wait_for(lambda: Approvals(history).get(fix).state == State.APPROVED,
             "the fix to be approved")
    wait_for(lambda: "approve" in text_of(b), "the approval in the audit trail")
    assert Approvals(history).get(fix).decided_by == "web:alice"
    shot(b, artefacts, "actions")

    run = start_running(history)
    b.get(f"{base}/runs/{run.run_id}")
    wait_for(lambda: b.find_elements("id", "results"), "the run page")
    b.execute_script("window.notReloaded = true;")
    for i, host in enumerate(("web1", "db1")):
        history.add_result(run.run_id, result(host, "disk.usage", Status.OK,
                                              f"live result {i}", NOW))
        wait_for(lambda i=i: f"live result {i}" in text_of(b), f"live result {i}")
    assert b.find_element("id", "run-count").text == "2"
    assert b.execute_script("return window.notReloaded === true;")
    shot(b, artefacts, "run-live")
    run.finished = NOW
    run.results = [result("web1", "disk.usage", Status.OK, "x", NOW)]
    history.finish_run(run)
    wait_for(lambda: "RUNNING" not in b.find_element("id", "run-status").text,
             "the run's status to change")
    assert b.execute_script("return window.notReloaded === true;")

    b.set_window_size(390, 844)  # a phone
    b.get(base + "/")
    overflow = b.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth;")
    assert overflow <= 1, f"the fleet page is {overflow}px wider than a phone"
    shot(b, artefacts, "fleet-phone")

    csp = [e for e in b.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not csp, csp
    assert sorted(p.name for p in artefacts.glob("*.png")) == [
        "actions-pending.png", "actions.png", "client.png", "fleet-phone.png", "fleet.png",
        "host.png", "login.png", "run-live.png"]
