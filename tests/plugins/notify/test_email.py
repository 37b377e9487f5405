"""The email notifier against a real aiosmtpd server on loopback (STARTTLS, TLS, AUTH)."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import ValidationError

from upkeeper import Notification, Status
from upkeeper.after_run.delivery import send_with_retry
from upkeeper.models import Result, RunRecord
from upkeeper_notify.common import DeliveryError
from upkeeper_notify.smtp import EmailNotifier, EmailParams
from upkeeper_notify.testserver import SMTP_PASSWORD, SMTP_USER, SMTPServer


def params(server: SMTPServer, **over: Any) -> EmailParams:
    base: dict[str, Any] = {
        "host": server.host, "port": server.port, "username": SMTP_USER,
        "password": SMTP_PASSWORD, "from": "upkeeper@msp.example",
        "to": ["oncall@msp.example"], "cc": "lead@msp.example", "ca_file": server.ca_file,
        "timeout": 10,
    }
    if server.mode == "ssl":
        base.update(ssl=True, starttls=False)
    return EmailParams.model_validate({**base, **over})


def notification() -> Notification:
    run = RunRecord("20261126T010000Z-abc123", "nightly")
    r = Result(Status.CRIT, "backup 49 h old", host="fs1", check="backup.restic")
    run.results.append(r)
    return Notification("CRIT: acme/fs1 backup.restic: backup 49 h old",
                        "CRIT fs1 backup.restic\nbackup 49 h old\n", run, [r], Status.CRIT,
                        html="<p><b>CRIT</b> fs1: backup 49 h old</p>")


def parts(msg: EmailMessage) -> dict[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    return {p.get_content_type(): str(p.get_content()) for p in msg.iter_parts()}


def test_starttls_auth_html_with_text_alternative(smtp: SMTPServer) -> None:
    EmailNotifier(params(smtp)).send(notification())
    box = smtp.mailbox
    assert box.logins == [SMTP_USER]
    assert box.tls == [True]
    assert box.envelopes == [("upkeeper@msp.example", ["oncall@msp.example",
                                                       "lead@msp.example"])]
    msg = box.messages[0]
    assert msg["Subject"] == "[upkeeper] CRIT: acme/fs1 backup.restic: backup 49 h old"
    assert msg["X-Upkeeper-Status"] == "CRIT"
    body = parts(msg)
    assert "backup 49 h old" in body["text/plain"]
    assert "<b>CRIT</b>" in body["text/html"]
    assert SMTP_PASSWORD not in msg.as_string()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls(smtp_ssl: SMTPServer) -> None:
    EmailNotifier(params(smtp_ssl)).send(notification())
    assert smtp_ssl.mailbox.tls == [True]
    assert smtp_ssl.mailbox.logins == [SMTP_USER]
    assert set(parts(smtp_ssl.mailbox.messages[0])) == {"text/plain", "text/html"}


def test_wrong_password_is_not_retried_and_not_shown(smtp: SMTPServer) -> None:
    notifier = EmailNotifier(params(smtp, password="wrong-password-123"))
    sleeps: list[float] = []
    attempts, error = send_with_retry(notifier, notification(), retries=3, backoff=1,
                                      sleep=sleeps.append)
    assert attempts == 1 and sleeps == []
    assert "authentication failed" in error
    assert "wrong-password-123" not in error
    assert smtp.mailbox.messages == []


def test_server_certificate_is_verified(smtp: SMTPServer) -> None:
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        EmailNotifier(params(smtp, ca_file=None)).send(notification())
    assert smtp.mailbox.messages == []


def test_refused_connection_is_retryable() -> None:
    from upkeeper_notify.testserver import free_port

    p = EmailParams.model_validate({"host": "127.0.0.1", "port": free_port(),
                                    "from": "a@b.example", "to": "c@d.example", "timeout": 5})
    sleeps: list[float] = []
    attempts, error = send_with_retry(EmailNotifier(p), notification(), retries=2,
                                      backoff=0.5, sleep=sleeps.append)
    assert attempts == 3 and sleeps == [0.5, 1.0]
    assert "127.0.0.1" in error


def test_password_needs_tls() -> None:
    with pytest.raises(ValidationError, match="without TLS"):
        EmailParams.model_validate({"host": "mail", "starttls": False, "username": "u",
                                    "password": "p", "from": "a@b", "to": "c@d"})
    with pytest.raises(ValidationError, match="one of ssl"):
        EmailParams.model_validate({"host": "mail", "starttls": True, "ssl": True,
                                    "from": "a@b", "to": "c@d"})
    p = EmailParams.model_validate({"smtp_host": "mail", "from": "a@b", "to": "c@d",
                                    "password": "hunter22"})
    assert "hunter22" not in repr(p)
