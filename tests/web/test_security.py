"""Dashboard security: loopback by default, authentication for anything else, sessions,
CSRF, login rate limit, roles, client scope (404, not 403) and security headers."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
import uvicorn
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from tests.waiting import wait_for
from tests.web.conftest import FAST_HASHER
from tests.web.fleetdata import NOW, globex_only_run
from upkeeper.store.history import History
from upkeeper.web.app import COOKIE, create_app
from upkeeper.web.auth import RateLimiter, Users, login_key
from upkeeper.web.server import Bind, WebServer, WebSetupError, check_setup, parse_bind
from upkeeper.web.site import WebConfig

URL = "http://127.0.0.1:8470"
PUBLIC_SCENARIO = Path(__file__).with_name("public_bind_scenario.py")


def login(client: TestClient, name: str, password: str) -> int:
    return client.post("/login", data={"user": name, "password": password}).status_code


def csrf_of(client: TestClient, page: str = "/actions") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(page).text)
    assert found, "no CSRF field on the page"
    return found.group(1)


@pytest.fixture
def users(fleet_history: History) -> Users:
    u = Users(fleet_history, hasher=FAST_HASHER)
    u.add("alice", "operator", password="alice-pw-1")
    u.add("vic", "viewer", password="vic-pw-1")
    u.add("acme-staff", "viewer", ("acme",), password="acme-pw-1")
    u.add("acme-ops", "operator", ("acme",), password="acme-ops-1")
    return u


@pytest.fixture
def authed(fleet_history: History, users: Users, config: WebConfig) -> Iterator[TestClient]:
    with TestClient(create_app(fleet_history, config), base_url=URL,
                    follow_redirects=False) as c:
        yield c


def test_loopback_without_users_serves_the_local_operator(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "local (operator)" in page.text
    assert "acme" in page.text and "globex" in page.text


def test_loopback_without_users_refuses_other_host_names(client: TestClient) -> None:
    # A DNS-rebinding page (attacker.example -> 127.0.0.1) must not read the dashboard.
    response = client.get("/", headers={"host": "attacker.example:8470"})
    assert response.status_code == 421
    assert "acme" not in response.text


@pytest.mark.parametrize("bind", ["0.0.0.0:8470", "192.0.2.10:8470", "[::]:8470",
                                  "dashboard.example:8470"])
def test_other_binds_need_users(fleet_history: History, bind: str) -> None:
    with pytest.raises(WebSetupError, match="without authentication"):
        check_setup(parse_bind(bind), fleet_history, None, None)
    Users(fleet_history, hasher=FAST_HASHER).add("alice", "operator", password="pw")
    check_setup(parse_bind(bind), fleet_history, None, None)


@pytest.mark.parametrize(("text", "bind"), [("127.0.0.1:8470", Bind("127.0.0.1", 8470)),
                                             ("[::1]:9000", Bind("::1", 9000)),
                                             ("8080", Bind("127.0.0.1", 8080))])
def test_parse_bind(text: str, bind: Bind) -> None:
    assert parse_bind(text) == bind
    assert bind.loopback


@pytest.mark.parametrize("text", ["", "host:", "host:99999", ":80x", "[::1"])
def test_parse_bind_rejects(text: str) -> None:
    with pytest.raises(WebSetupError, match="--bind"):
        parse_bind(text)


def test_half_a_tls_configuration_is_refused(fleet_history: History, tmp_path) -> None:
    with pytest.raises(WebSetupError, match="go together"):
        check_setup(parse_bind("127.0.0.1:1"), fleet_history, "cert.pem", None)
    with pytest.raises(WebSetupError, match=r"cert\.pem"):
        check_setup(parse_bind("127.0.0.1:1"), fleet_history, str(tmp_path / "cert.pem"),
                    str(tmp_path / "key.pem"))


def test_users_configured_means_login(authed: TestClient) -> None:
    response = authed.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert authed.get("/runs/run-001/progress.json").status_code == 401
    assert login(authed, "alice", "wrong") == 401
    assert login(authed, "nobody", "alice-pw-1") == 401
    assert login(authed, "alice", "alice-pw-1") == 303
    assert authed.get("/").status_code == 200


def test_session_cookie_flags(fleet_history: History, users: Users) -> None:
    for tls, secure in ((False, False), (True, True)):
        with TestClient(create_app(fleet_history, WebConfig(tls=tls)), base_url=URL,
                        follow_redirects=False) as c:
            response = c.post("/login", data={"user": "alice", "password": "alice-pw-1"})
            cookie = response.headers["set-cookie"]
            assert cookie.startswith(f"{COOKIE}=")
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie
            assert ("Secure" in cookie) is secure
            assert ("strict-transport-security" in response.headers) is tls


def test_logout_ends_the_session(authed: TestClient) -> None:
    login(authed, "alice", "alice-pw-1")
    sid = authed.cookies[COOKIE]
    assert authed.post("/logout", data={"csrf": csrf_of(authed)}).status_code == 303
    authed.cookies.set(COOKIE, sid)  # a copied cookie is no longer any good
    assert authed.get("/").status_code == 303


def test_login_is_rate_limited(fleet_history: History, users: Users) -> None:
    now = [0.0]
    config = WebConfig(limiter=RateLimiter(limit=3, window=60, clock=lambda: now[0]))
    with TestClient(create_app(fleet_history, config), base_url=URL,
                    follow_redirects=False) as c:
        assert [login(c, "alice", "guess") for _ in range(3)] == [401, 401, 401]
        # Blocked now, even with the right password.
        assert login(c, "alice", "alice-pw-1") == 429
        now[0] = 61.0
        assert login(c, "alice", "alice-pw-1") == 303


def test_post_without_csrf_token_is_refused(authed: TestClient) -> None:
    login(authed, "alice", "alice-pw-1")
    assert authed.post("/hosts/web1/mute", data={"period": "1h"}).status_code == 403
    assert authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": "x"}
                       ).status_code == 403
    # A token that is not ASCII is refused like any wrong one (was a 500).
    assert authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": "\u00e9"}
                       ).status_code == 403
    ok = authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": csrf_of(authed)})
    assert ok.status_code == 303


def test_viewer_cannot_act(authed: TestClient) -> None:
    login(authed, "vic", "vic-pw-1")
    page = authed.get("/hosts/db1")
    assert page.status_code == 200 and "Mute" not in page.text
    assert authed.post("/hosts/db1/mute", data={"period": "1h", "csrf": csrf_of(authed)}
                       ).status_code == 403


def test_api_token(fleet_history: History, users: Users) -> None:
    token = users.add("monitor", "viewer", token=True)
    assert token
    with TestClient(create_app(fleet_history), base_url=URL, follow_redirects=False) as c:
        assert c.get("/", headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/", headers={"authorization": "Bearer nope"}).status_code == 401
        assert c.post("/hosts/db1/mute", data={"period": "1h"},
                      headers={"authorization": f"Bearer {token}"}).status_code == 403


SCOPED_404 = ["/clients/globex", "/hosts/mail1", "/hosts/mail1?days=90",
              "/runs/run-globex", "/runs/run-globex/progress.json", "/clients/nosuch",
              "/hosts/nosuch", "/runs/nosuch", "/clients/%28no%20client%29",
              f"/clients/globex/report?month={(NOW - timedelta(days=1)):%Y-%m}"]


def test_client_scoped_user_cannot_see_another_client(fleet_history: History,
                                                      authed: TestClient) -> None:
    globex_only_run(fleet_history)
    login(authed, "acme-staff", "acme-pw-1")
    for url in SCOPED_404:
        response = authed.get(url)
        assert response.status_code == 404, url
        assert "mail1" not in response.text and "globex" not in response.text, url
    # Their own client, its hosts and charts are there.
    page = authed.get("/clients/acme")
    assert page.status_code == 200 and "<svg" in page.text and "mail1" not in page.text
    assert authed.get("/hosts/web1").status_code == 200
    # The fleet, runs and a run over every host show only their hosts.
    for url in ("/", "/runs", "/runs/run-001", "/runs/run-001/progress.json", "/actions"):
        response = authed.get(url)
        assert response.status_code == 200, url
        assert "mail1" not in response.text and "globex" not in response.text, url
    assert "web1" in authed.get("/runs/run-001").text
    assert "/clients/acme" in authed.get("/").text
    assert "run-001" in authed.get("/runs").text


def test_scoped_operator_cannot_act_on_another_client(authed: TestClient) -> None:
    login(authed, "acme-ops", "acme-ops-1")
    token = csrf_of(authed)
    assert authed.post("/hosts/mail1/mute", data={"period": "1h", "csrf": token}
                       ).status_code == 404
    assert authed.post("/hosts/mail1/ack", data={"check": "disk.usage", "status": "CRIT",
                                                 "csrf": token}).status_code == 404
    assert authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": token}
                       ).status_code == 303


def test_security_headers_and_no_inline_code(client: TestClient) -> None:
    for url in ("/", "/clients/acme", "/hosts/web1", "/runs", "/runs/run-001", "/actions"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "script-src 'self'" in csp, url
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), url
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", response.text), url
        assert "http://" not in response.text and "https://" not in response.text, url


def test_host_output_is_escaped(fleet_history: History, client: TestClient) -> None:
    from tests.web.fleetdata import NOW, result
    from upkeeper.models import RunRecord, Status

    run = RunRecord("run-xss", "daily", started=NOW)
    fleet_history.start_run(run)
    fleet_history.add_result("run-xss", result("web1", "system.command", Status.WARN,
                                               "<script>alert(1)</script>", NOW))
    for url in ("/", "/hosts/web1", "/runs/run-xss", "/clients/acme"):
        text = client.get(url).text
        assert "<script>alert" not in text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/hosts/web1").text


def test_static_assets_are_served_from_the_package(client: TestClient) -> None:
    for name, kind in (("app.css", "text/css"), ("app.js", "javascript"),
                       ("favicon.svg", "image/svg+xml")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert client.get("/static/../auth.py").status_code == 404


def test_cross_origin_posts_are_refused(authed: TestClient) -> None:
    evil = {"origin": "https://attacker.example"}
    for origin in ("https://attacker.example", "null"):  # null: a no-referrer page
        assert authed.post("/login", data={"user": "alice", "password": "alice-pw-1"},
                           headers={"origin": origin}).status_code == 403
    assert login(authed, "alice", "alice-pw-1") == 303
    token = csrf_of(authed)
    assert authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": token},
                       headers=evil).status_code == 403
    assert authed.post("/hosts/web1/mute", data={"period": "1h", "csrf": token},
                       headers={"origin": URL}).status_code == 303


def test_adding_a_user_ends_the_unauthenticated_sessions(fleet_history: History,
                                                         client: TestClient) -> None:
    assert client.get("/").status_code == 200
    assert COOKIE in client.cookies
    Users(fleet_history, hasher=FAST_HASHER).add("alice", "operator", password="pw")
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"] == "/login"
    with pytest.raises(ValueError, match="reserved"):
        Users(fleet_history).add("local", "viewer", password="pw")


def test_sessions_are_bounded_per_user(fleet_history: History) -> None:
    from upkeeper.web.auth import LOCAL_USER, MAX_SESSIONS

    users = Users(fleet_history)
    sids = [users.new_session(LOCAL_USER)[0] for _ in range(MAX_SESSIONS + 5)]
    count = fleet_history.query("SELECT COUNT(*) FROM web_sessions")[0][0]
    assert count == MAX_SESSIONS
    assert users.session(sids[-1]) is not None


def test_oversized_forms_are_refused(client: TestClient) -> None:
    client.get("/")
    big = {"csrf": "x", "reason": "a" * 100_000}
    assert client.post("/hosts/web1/mute", data=big).status_code == 413
    assert client.post("/login", data=big).status_code == 413


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("ip") is None,
                    reason="needs root, unshare -n and ip for a network of its own")
def test_public_dashboard_stays_closed_when_its_last_user_goes(tmp_path: Path) -> None:
    """Bound to 0.0.0.0 with a user, then the user removed while it serves: anyone who
    can reach the port (naming Host: 127.0.0.1) must not become the local operator."""
    res = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"',
                          "sh", sys.executable, str(PUBLIC_SCENARIO), str(tmp_path)],
                         capture_output=True, text=True, timeout=300,
                         cwd=PUBLIC_SCENARIO.parents[2])
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["with_user"] == 303
    assert out["after_remove"] == 503 and not out["fleet_shown"]
    assert out["actions"] == 503


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        res = conn.getresponse()
        return res.status, res.read().decode("utf-8", "replace")
    finally:
        conn.close()


@pytest.mark.parametrize("header", ["X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP",
                                    "Forwarded", "Via"])
def test_loopback_without_users_refuses_proxied_requests(fleet_history: History,
                                                         header: str) -> None:
    """A reverse proxy in front of a dashboard without users (nginx sends the upstream's
    Host, 127.0.0.1:8470, unless told otherwise) must not make the local operator
    reachable from wherever the proxy is."""
    server = WebServer(fleet_history, Bind("127.0.0.1", 0))
    server.start()
    try:
        host = {"Host": f"127.0.0.1:{server.port}"}
        assert _get(server.port, "/", host)[0] == 200
        code, text = _get(server.port, "/", {**host, header: "203.0.113.7"})
        assert code == 421 and "acme" not in text
    finally:
        server.stop()


def test_a_spray_of_addresses_does_not_reset_a_user_s_limit() -> None:
    """The limiter's memory is bounded; an attacker with many addresses (an IPv6 /64)
    filling it must not wipe the count that blocks guessing one user's password."""
    now = [0.0]
    limiter = RateLimiter(limit=5, window=900, clock=lambda: now[0])
    for _ in range(5):
        limiter.failed("addr:203.0.113.7", "user:alice")
    assert limiter.blocked("addr:198.51.100.1", "user:alice")
    for n in range(6000):
        now[0] += 0.01
        limiter.failed(f"addr:2001:db8::{n:x}", f"user:x{n}")
    assert limiter.blocked("addr:198.51.100.1", "user:alice")
    assert len(limiter._fails) <= 10_001


def test_ipv6_clients_are_limited_per_64() -> None:
    assert login_key("2001:db8:1:2:aaaa::1") == login_key("2001:db8:1:2:bbbb::9")
    assert login_key("2001:db8:1:3::1") != login_key("2001:db8:1:2::1")
    assert login_key("203.0.113.7") == "addr:203.0.113.7"


class _HeldHasher(PasswordHasher):
    """Argon2 at its cheapest, whose verify waits until the test lets it go: every
    login that reaches the password check is counted and held there."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.reached = 0
        self.lock = threading.Lock()
        self.go = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        with self.lock:
            self.reached += 1
        self.go.wait(120)
        return super().verify(hash, password)


def test_parallel_guesses_do_not_outrun_the_login_limit(fleet_history: History,
                                                        users: Users) -> None:
    """30 wrong passwords sent at once: a guess counts when it starts, not when its
    (slow, on purpose) check ends, so only the limit's 5 ever reach the check."""
    hasher = _HeldHasher()
    app = create_app(fleet_history, WebConfig(hasher=hasher))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    codes: list[int] = []

    def guess(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=150)
        conn.request("POST", "/login", body=f"user=alice&password=guess-{n}",
                     headers={"Host": f"127.0.0.1:{port}",
                              "Content-Type": "application/x-www-form-urlencoded"})
        codes.append(conn.getresponse().status)
        conn.close()

    try:
        wait_for(lambda: server.started, "the dashboard to start")
        guesses = [threading.Thread(target=guess, args=(n,)) for n in range(30)]
        for t in guesses:
            t.start()
        try:
            wait_for(lambda: codes.count(429) == 25, "25 guesses refused", timeout=30)
        finally:
            hasher.go.set()
            for t in guesses:
                t.join(150)
        assert hasher.reached == 5 and sorted(codes) == [401] * 5 + [429] * 25
    finally:
        hasher.go.set()
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_progress_after_out_of_range_is_not_an_error(fleet_history: History) -> None:
    server = WebServer(fleet_history, Bind("127.0.0.1", 0))
    server.start()
    try:
        host = {"Host": f"127.0.0.1:{server.port}"}
        for after in ("99999999999999999999999", "-99999999999999999999999"):
            code, text = _get(server.port, f"/runs/run-001/progress.json?after={after}",
                              host)
            assert code == 200, (after, text)
            assert json.loads(text)["finished"] is True
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and unshare -m for a private /etc/hosts")
def test_a_localhost_that_is_not_loopback_needs_users(tmp_path: Path) -> None:
    scenario = Path(__file__).with_name("localhost_scenario.py")
    res = subprocess.run(["unshare", "-m", sys.executable, str(scenario), str(tmp_path)],
                         capture_output=True, text=True, timeout=120,
                         cwd=scenario.parents[2])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "refused"


def test_a_run_over_two_clients_shows_a_scoped_user_their_hosts_status(
        authed: TestClient) -> None:
    """run-001 covers acme and globex; globex's mail1 is CRIT, acme's worst is WARN: the
    run page and its progress must not tell acme's staff that globex has a problem (the
    runs list already counts their hosts alone)."""
    login(authed, "acme-staff", "acme-pw-1")
    listed = {r["run_id"]: r for r in data_runs(authed)}
    assert listed["run-001"]["status"] == "WARN"
    assert authed.get("/runs/run-001/progress.json").json()["status"] == "WARN"
    page = authed.get("/runs/run-001").text
    assert "st-warn" in page.split('id="run-status"')[1][:80]
    login(authed, "alice", "alice-pw-1")  # everyone's view: the whole run
    assert authed.get("/runs/run-001/progress.json").json()["status"] == "CRIT"


def data_runs(client: TestClient) -> list[dict[str, object]]:
    from upkeeper.web import data
    from upkeeper.web.auth import User

    site = client.app.state.site  # type: ignore[attr-defined]
    return data.runs(site.history, User("acme-staff", "viewer", ("acme",)))
