"""The test kit plugin authors get: strict fakes, a fake clock and notifier, a whole-playbook
runner, prefixed fixtures, and the real test servers shipped with the built-in plugins."""

from __future__ import annotations

import smtplib
import ssl
import urllib.request
from datetime import timedelta

import pytest

from upkeeper import Check, CheckContext, Params, Result, Status, hookimpl
from upkeeper.testing import (
    FakeClock,
    FakeNotifier,
    FakeTransport,
    UnexpectedCommand,
    make_host,
    run_check,
    run_playbook,
)


class ToolVersion(Check[Params]):
    name = "kit.tool_version"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        res = ctx.run(["mytool", "--version"])
        if res.exit_code == 127:
            return Result(Status.UNKNOWN, "mytool is not installed")
        return Result(Status.OK, res.stdout.strip())


class KitPlugin:
    @hookimpl
    def upkeeper_register_checks(self):
        return [ToolVersion]


def test_fake_transport_is_strict():
    """An unanswered command fails the test instead of passing as exit 127."""
    with pytest.raises(UnexpectedCommand, match="mytool --version"):
        run_check(ToolVersion, transport=FakeTransport(make_host()))
    (r,) = run_check(ToolVersion, transport=FakeTransport(make_host(), strict=False))
    assert r.status is Status.UNKNOWN
    explicit = FakeTransport(make_host(), {"mytool --version": (127, "", "not found")})
    (r,) = run_check(ToolVersion, transport=explicit)
    assert r.summary == "mytool is not installed"
    explicit.assert_all_called()


def test_assert_all_called_names_unused_answers():
    t = FakeTransport(make_host(), {"mytool --version": "1.2", "unused thing": "x"})
    run_check(ToolVersion, transport=t)
    with pytest.raises(AssertionError, match="unused thing"):
        t.assert_all_called()


def test_fake_clock():
    clock = FakeClock()
    start = clock.now()
    assert clock.advance(hours=2) - start == timedelta(hours=2)
    assert start.tzinfo is not None


def test_prefixed_fixtures(upkeeper_fake_transport, upkeeper_history, upkeeper_clock,
                           upkeeper_notifier):
    assert isinstance(upkeeper_fake_transport, FakeTransport)
    assert upkeeper_history.results() == []
    assert isinstance(upkeeper_clock, FakeClock)
    assert upkeeper_notifier is FakeNotifier and FakeNotifier.sent == []


def test_run_playbook_with_a_plugin_and_the_fake_notifier(tmp_path, upkeeper_notifier):
    (tmp_path / "mytool").write_text("#!/bin/sh\necho mytool 1.2\n")
    (tmp_path / "mytool").chmod(0o755)
    run = run_playbook(
        {"name": "kit", "hosts": "localhost",
         "vars": {"ansible_connection": "local"},
         "checks": [{"check": "system.command",
                     "params": {"command": "exit 2"}, "name": "always crit"}],
         "notify": [{"notifier": "fake"}]},
        plugins=[KitPlugin(), FakeNotifier.plugin()], builtins=True)
    (result,) = run.results
    assert result.status is Status.CRIT
    assert len(upkeeper_notifier.sent) == 1
    assert "always crit" in upkeeper_notifier.sent[0].text


def test_notify_test_servers_are_real(tmp_path):
    """SMTP with STARTTLS and AUTH, and a webhook receiver, for third-party notifiers."""
    pytest.importorskip("aiosmtpd")
    from upkeeper_notify.testserver import (
        SMTP_PASSWORD,
        SMTP_USER,
        make_cert,
        smtp_server,
        webhook_server,
    )

    with smtp_server(make_cert(tmp_path)) as smtp:
        tls = ssl.create_default_context(cafile=smtp.ca_file)
        with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as client:
            client.starttls(context=tls)
            client.login(SMTP_USER, SMTP_PASSWORD)
            client.sendmail("a@example.com", ["b@example.com"], "Subject: hi\r\n\r\nbody")
        assert len(smtp.mailbox.messages) == 1
    with webhook_server([500]) as hook:
        req = urllib.request.Request(hook.url, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(req, timeout=10)
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        assert len(hook.hits) == 2
