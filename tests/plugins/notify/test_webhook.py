"""The webhook notifier against a real http.server on loopback."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from upkeeper import Notification, Status
from upkeeper.after_run.delivery import send_with_retry
from upkeeper.models import Result, RunRecord
from upkeeper_notify.common import DeliveryError, safe_url
from upkeeper_notify.testserver import WebhookServer, webhook_server
from upkeeper_notify.webhook import WebhookNotifier, WebhookParams


def notification() -> Notification:
    run = RunRecord("20261126T010000Z-abc123", "nightly")
    crit = Result(Status.CRIT, "/var 97% used", host="web1", check="disk.usage",
                  name="disk.usage")
    ok = Result(Status.OK, "restic snapshot 3 h old", host="fs1", check="backup.restic",
                name="backup.restic")
    run.results += [crit, ok]
    alerts = [{**crit.to_dict(), "kind": "new", "client": "Acme", "previous": None},
              {**ok.to_dict(), "kind": "recovery", "client": "Acme", "previous": "CRIT"}]
    return Notification("CRIT: Acme: 1 problem, 1 recovered", "text", run, [crit, ok],
                        Status.CRIT, extra={"client": "Acme", "kind": "digest",
                                            "alerts": alerts})


def notifier(url: str, **over: Any) -> WebhookNotifier:
    return WebhookNotifier(WebhookParams.model_validate({"url": url, "timeout": 5, **over}))


def test_generic_json(webhook: WebhookServer) -> None:
    notifier(webhook.url + "/hooks/upkeeper").send(notification())
    (hit,) = webhook.hits
    assert hit.method == "POST" and hit.path == "/hooks/upkeeper"
    assert hit.headers["Content-Type"] == "application/json"
    body = hit.json()
    assert body["source"] == "upkeeper" and body["status"] == "CRIT"
    assert body["client"] == "Acme" and body["run"]["run_id"] == "20261126T010000Z-abc123"
    assert [(a["host"], a["kind"]) for a in body["alerts"]] == [("web1", "new"),
                                                               ("fs1", "recovery")]


def test_slack_body(webhook: WebhookServer) -> None:
    notifier(webhook.url, format="slack").send(notification())
    body = webhook.hits[0].json()
    assert body["text"] == "CRIT: Acme: 1 problem, 1 recovered"
    section = next(b for b in body["blocks"] if b["type"] == "section")
    assert section["text"]["type"] == "mrkdwn"
    assert "*CRIT* `web1` disk.usage: /var 97% used" in section["text"]["text"]
    assert "*RECOVERED* `fs1`" in section["text"]["text"]


def test_teams_adaptive_card(webhook: WebhookServer) -> None:
    notifier(webhook.url, format="teams").send(notification())
    body = webhook.hits[0].json()
    assert body["type"] == "message"
    (att,) = body["attachments"]
    assert att["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = att["content"]
    assert card["type"] == "AdaptiveCard" and card["body"][0]["color"] == "Attention"
    facts = card["body"][1]["facts"]
    assert facts[0] == {"title": "web1 disk.usage", "value": "CRIT: /var 97% used"}


HALO_TEMPLATE = """{
  "summary": {{ subject | tojson }},
  "details": {{ text | tojson }},
  "client_name": {{ client | tojson }},
  "priority_id": {{ 1 if status == "CRIT" else 3 }},
  "tickettype_id": 1,
  "items": [{% for a in alerts %}{"host": {{ a.host | tojson }},
             "what": {{ a.summary | tojson }}}{{ "," if not loop.last }}{% endfor %}]
}"""


def test_custom_body_and_headers_for_a_psa(webhook: WebhookServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    n = notifier(webhook.url + "/api/tickets", method="PUT", body_template=HALO_TEMPLATE,
                 headers={"Authorization": "Bearer tok-123456", "X-Tenant": "msp"})
    n.send(notification())
    hit = webhook.hits[0]
    assert hit.method == "PUT"
    assert hit.headers["Authorization"] == "Bearer tok-123456"
    assert hit.headers["X-Tenant"] == "msp"
    body = hit.json()
    assert body["priority_id"] == 1 and body["client_name"] == "Acme"
    assert body["items"][0] == {"host": "web1", "what": "/var 97% used"}


def test_template_that_is_not_json_is_refused(webhook: WebhookServer) -> None:
    n = notifier(webhook.url, body_template='{"summary": {{ subject }}}')
    with pytest.raises(DeliveryError, match="valid JSON") as exc:
        n.send(notification())
    assert exc.value.retryable is False
    assert webhook.hits == []


def test_retries_with_backoff_on_500_then_success() -> None:
    with webhook_server([500, 503]) as server:
        sleeps: list[float] = []
        attempts, error = send_with_retry(notifier(server.url), notification(), retries=3,
                                          backoff=0.25, sleep=sleeps.append)
        assert (attempts, error) == (3, "")
        assert sleeps == [0.25, 0.5]
        assert len(server.hits) == 3


def test_client_errors_are_not_retried() -> None:
    with webhook_server([400, 400]) as server:
        attempts, error = send_with_retry(notifier(server.url), notification(), retries=3,
                                          backoff=0, sleep=lambda s: None)
        assert attempts == 1 and "HTTP 400" in error


def test_secret_url_and_token_never_in_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with webhook_server([500] * 5) as server:
        url = server.url + "/services/T000/B000/XXXXsecretpathXXXX?token=qs-secret"
        n = notifier(url, headers={"Authorization": "Bearer tok-abcdef"})
        attempts, error = send_with_retry(n, notification(), retries=2, backoff=0,
                                          sleep=lambda s: None)
    assert attempts == 3 and "HTTP 500" in error
    for text in (error, caplog.text):
        assert "secretpath" not in text and "qs-secret" not in text
        assert "tok-abcdef" not in text


def test_safe_url_drops_credentials_path_and_query() -> None:
    assert safe_url("https://user:pw@hooks.example.com:8443/a/b?c=d") == \
        "https://hooks.example.com:8443"


def test_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookParams.model_validate({"url": "file:///etc/passwd"})
    with pytest.raises(ValueError, match="does not compile"):
        WebhookParams.model_validate({"url": "http://x", "body_template": "{{ oops"})
