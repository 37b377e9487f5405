"""The dashboard served over TLS from certificate files by the real server (uvicorn):
HTTPS only, Secure session cookies, HSTS; a public bind with users."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from pathlib import Path

import pytest

from tests.web.conftest import FAST_HASHER
from upkeeper.store.history import History
from upkeeper.web.auth import Users
from upkeeper.web.server import Bind, WebServer, WebSetupError
from upkeeper_notify.testserver import make_cert


def test_dashboard_over_tls(fleet_history: History, tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with pytest.raises(WebSetupError, match="without authentication"):
        WebServer(fleet_history, Bind("0.0.0.0", 0), tls_cert=str(cert), tls_key=str(key))
    Users(fleet_history, hasher=FAST_HASHER).add("alice", "operator", password="pw-1")
    server = WebServer(fleet_history, Bind("127.0.0.1", 0), tls_cert=str(cert),
                       tls_key=str(key))
    server.start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context,
                                           timeout=30)
        body = urllib.parse.urlencode({"user": "alice", "password": "pw-1"})
        conn.request("POST", "/login", body, {
            "content-type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        assert response.status == 303
        cookie = response.getheader("set-cookie") or ""
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert response.getheader("strict-transport-security")
        conn.request("GET", "/", headers={"cookie": cookie.split(";")[0]})
        page = conn.getresponse()
        assert page.status == 200 and "acme" in page.read().decode()
        conn.close()
        assert plain_http(server.port) in ("refused", 400)  # never the page
    finally:
        server.stop()


def plain_http(port: int) -> int | str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return "refused"
    finally:
        conn.close()
