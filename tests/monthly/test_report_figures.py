"""The key figures at the top of the HTML report read as sentences to a client: one
incident is "1 incident", and figures of things that were never checked (no patching
or backup checks for this client) are left out instead of claiming 0."""

from __future__ import annotations

import re

from tests.monthly.helpers import at, clients, record
from upkeeper.models import Status
from upkeeper.monthly.period import month_period
from upkeeper.monthly.render import render_client_report
from upkeeper.monthly.report import build_client_report
from upkeeper.store.history import History


def figures(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", f)).strip()
            for f in re.findall(r'<div class="figure">(.*?)</div>', html)]


def test_one_incident_and_no_backup_checks(history: History) -> None:
    clients(history, {"web1": "acme"})
    record(history, at("2026-11-03 02:00"), [("web1", "disk.usage", Status.OK)])
    record(history, at("2026-11-04 02:00"), [("web1", "disk.usage", Status.CRIT)])
    record(history, at("2026-11-05 02:00"), [("web1", "disk.usage", Status.OK)])
    report = build_client_report(history, "acme", month_period("2026-11"),
                                 now=at("2026-12-02 00:00"))
    shown = figures(render_client_report(report, "html"))
    assert "1 incident (0 open)" in shown
    assert not [f for f in shown if "backup" in f or "restore" in f or "update" in f]


def test_plural_figures_with_patching_and_backups(history: History) -> None:
    clients(history, {"web1": "acme"})
    record(history, at("2026-11-03 02:00"), [
        ("web1", "patching.apply", Status.OK, {"installed": 1.0}),
        ("web1", "backup.restic", Status.OK, {"integrity_ok": 1.0, "restore_ok": 1.0,
                                              "age_hours": 2.0})])
    report = build_client_report(history, "acme", month_period("2026-11"),
                                 now=at("2026-12-02 00:00"))
    shown = figures(render_client_report(report, "html"))
    assert {"0 incidents (0 open)", "1 update installed", "1 backup verified",
            "1 test restore"} <= set(shown)
