"""A mute set on the dashboard, honoured by real runs: the runner, the after-run step and
the webhook notifier to a real HTTP server on loopback."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from tests.plugins.notify.test_dispatch import Fleet, acme, webhook_channel
from upkeeper.web.app import create_app
from upkeeper_notify.testserver import webhook_server


def test_muted_host_gets_no_alert_until_unmuted(tmp_path: Path) -> None:
    with webhook_server() as hook:
        fleet = Fleet(tmp_path, notify={"channels": [webhook_channel(hook.url)]})
        fleet.run(acme("OK"))
        with TestClient(create_app(fleet.history), base_url="http://127.0.0.1:8470",
                        follow_redirects=False) as web:
            page = web.get("/hosts/web1").text
            token = page.split('name="csrf" value="')[1].split('"')[0]
            assert web.post("/hosts/web1/mute", data={
                "csrf": token, "check": "", "period": "1d"}).status_code == 303
            fleet.run(acme("CRIT"))
            assert hook.hits == []  # muted: not told
            assert web.post("/hosts/web1/unmute", data={
                "csrf": token, "check": "*"}).status_code == 303
        fleet.run(acme("CRIT"))
        assert [h.json()["status"] for h in hook.hits] == ["CRIT"]
