"""The period client report: built from every result in the month (not one run), with
availability, incidents over the month's edges, patches, backups, disk forecasts, fixes,
planned windows; rendered as HTML (escaped) and Markdown; and the CLI around it."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.monthly.helpers import UTC, at, clients, record
from upkeeper.cli.main import main
from upkeeper.models import Status
from upkeeper.monthly.period import month_period
from upkeeper.monthly.render import render_client_report, summary_lines
from upkeeper.monthly.report import FixDone, MonthlyReportError, build_client_report
from upkeeper.store.history import History

OK, WARN, CRIT = Status.OK, Status.WARN, Status.CRIT
DAILY = {"trigger": "schedule", "schedule_period": 86400.0}
NOV = month_period("2026-11")
AFTER = at("2026-12-02 09:00")


def november(history: History) -> None:
    """Two acme hosts checked daily at 02:00 from Oct 25 to Dec 1 by two playbooks, and
    a globex host; a disk incident from Oct 30 to Nov 2, a backup failure Nov 29 to
    Dec 1, weekly patching on Sundays."""
    clients(history, {"web1": "acme", "db1": "acme", "mail": "globex"})
    day = at("2026-10-25 02:00")
    while day <= at("2026-12-01 02:00"):
        disk = CRIT if at("2026-10-30") <= day < at("2026-11-02") else OK
        used = 80.0 + (day - at("2026-10-25 02:00")).days * 0.5
        backup = CRIT if at("2026-11-29") <= day < at("2026-12-01") else OK
        record(history, day, [
            ("web1", "disk.usage", disk, {"/:used_pct": used, "/:days_to_full": 40.0 - used / 4}),
            ("db1", "disk.usage", OK, {"/:used_pct": 50.0}),
            ("mail", "disk.usage", CRIT),
        ], playbook="daily", meta=DAILY)
        results: list = [
            ("web1", "backup.restic", backup,
             {"integrity_ok": 0.0 if backup is CRIT else 1.0, "age_hours": 5.0}
             | ({"restore_ok": 1.0} if day.weekday() == 6 else {})),
            ("db1", "patching.status", OK if day.day % 10 else WARN,
             {"pending_total": 3.0, "pending_security": 0.0 if day.day % 10 else 2.0}),
        ]
        record(history, day + timedelta(minutes=30), results, playbook="backups", meta=DAILY)
        if day.weekday() == 6:
            record(history, day + timedelta(hours=1), [
                ("db1", "patching.apply", OK, {"installed": 4.0, "rebooted": 1.0})],
                playbook="patch", meta={"schedule_period": 7 * 86400.0})
        day += timedelta(days=1)


def test_report_of_a_month_from_every_result(history: History) -> None:
    november(history)
    r = build_client_report(history, "acme", NOV, now=AFTER)
    assert r.hosts == ["db1", "web1"]
    assert r.results == 30 * 4 + 5  # four daily checks and five Sunday patch runs
    disk = next(c for c in r.checks if (c.host, c.check) == ("web1", "disk.usage"))
    # CRIT carried in from October until the recovery on Nov 2 02:00: 26 h of 720.
    assert disk.availability.share == pytest.approx(1 - 26 / 720)
    assert [(i.host, i.check, i.start, i.end) for i in r.incidents] == [
        ("web1", "disk.usage", at("2026-10-30 02:00"), at("2026-11-02 02:00")),
        ("db1", "patching.status", at("2026-11-10 02:30"), at("2026-11-11 02:30")),
        ("db1", "patching.status", at("2026-11-20 02:30"), at("2026-11-21 02:30")),
        ("web1", "backup.restic", at("2026-11-29 02:30"), None),  # open at month end
        ("db1", "patching.status", at("2026-11-30 02:30"), None),
    ]
    (patches,) = r.patches
    assert (patches.host, patches.installed, patches.apply_runs, patches.reboots) == (
        "db1", 20, 5, 5)
    assert patches.compliance == pytest.approx(1 - (24 + 24 + 21.5) / 720)  # Nov 30: 21.5 h
    (backup,) = r.backups
    assert (backup.verified, backup.verify_failed, backup.restores) == (30, 2, 5)
    (forecast,) = r.disks
    assert forecast.host == "web1" and forecast.device == "/"
    assert forecast.days_to_full == pytest.approx(40.0 - (80.0 + 36 * 0.5) / 4)  # Nov 30
    assert r.fixes is None and r.doc_changes is None and r.planned is None
    text = " ".join(summary_lines(r))
    assert "We checked 2 systems 125 times" in text
    assert "5 incidents: 3 resolved" in text
    assert "2 open at period end: web1 backup.restic (crit, 1 day 21 h)" in text
    assert "20 updates installed on 1 system" in text
    assert "verified 30 times (2 failed)" in text
    md = render_client_report(r, "md")
    assert "| db1 | disk.usage | 100% | 100% | 30 | 0 | OK |" in md


def test_month_boundaries_follow_the_client_timezone(history: History) -> None:
    clients(history, {"web1": "acme"})
    # 23:30 UTC on Oct 31 is already November in Berlin.
    record(history, at("2026-10-31 23:30"), [("web1", "disk.usage", CRIT)])
    record(history, at("2026-11-30 23:30"), [("web1", "disk.usage", OK)])  # December there
    berlin = build_client_report(history, "acme", month_period("2026-11", "Europe/Berlin"),
                                 now=AFTER)
    assert berlin.results == 1 and berlin.incidents[0].end is None
    utc = build_client_report(history, "acme", NOV, now=AFTER)
    assert utc.results == 1 and utc.incidents[0].end == at("2026-11-30 23:30")


def test_seams_windows_and_errors(history: History) -> None:
    november(history)
    fixes = [FixDone("web1", "disk.usage", at("2026-11-01 03:00"), "cleaned /var/tmp", "OK")]
    seen: list = []

    def source(hosts, start, end):  # type: ignore[no-untyped-def]
        seen.append((list(hosts), start, end))
        return fixes

    host_vars = {"web1": {"client": "acme", "timezone": "Europe/Berlin",
                          "maintenance_windows": ["Sat 22:00-Sun 04:00"]},
                 "db1": {"client": "acme", "maintenance_windows": ["2nd Tue 20:00-23:30"]}}
    r = build_client_report(history, "acme", NOV, now=AFTER, fixes=source, host_vars=host_vars)
    assert seen == [(["db1", "web1"], NOV.start, NOV.end)] and r.fixes == fixes
    assert r.planned and r.planned[0].start == at("2026-12-05 21:00")
    assert r.planned[0].hosts == ("web1",)
    assert "Next maintenance window: Sat 05 Dec 2026 21:00 (UTC)." in summary_lines(r)
    with pytest.raises(MonthlyReportError, match="no hosts known for client 'nobody'"):
        build_client_report(history, "nobody", NOV, now=AFTER)
    with pytest.raises(MonthlyReportError, match="no results for client 'acme' in March"):
        build_client_report(history, "acme", month_period("2026-03"), now=AFTER)


def test_rendered_html_escapes_and_markdown_reads(history: History) -> None:
    clients(history, {"web1": "acme"})
    record(history, at("2026-11-03 02:00"), [("web1", "disk.usage", CRIT)],
           summary="<script>alert(1)</script> | \x1b[31mred")
    r = build_client_report(history, "acme", NOV, now=AFTER)
    html = render_client_report(r, "html")
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "\x1b" not in html and "@media print" in html and "<link" not in html
    assert "Maintenance report: acme" in html and "November 2026" in html
    md = render_client_report(r, "md")
    assert md.startswith("# Maintenance report: acme")
    assert "\\|" in md and "<script>" not in md and "\x1b" not in md
    assert "| web1 | disk.usage | 03 Nov 2026 02:00 | open at period end |" in md
    assert "### Needs attention now (as of 02 Dec 2026 09:00)" in md
    assert "| web1 | disk.usage | CRIT (not checked since 03 Nov 2026 02:00) |" in md


def test_cli_month_report_and_usage_errors(state_dir: Path, tmp_path: Path) -> None:
    h = History(state_dir / "history.sqlite3")
    november(h)
    h.close()
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars: {client: acme, timezone: Europe/Berlin}\n"
                   "  hosts:\n    web1: {maintenance_windows: ['Sat 22:00-Sun 04:00']}\n"
                   "    db1: {}\n")
    out = tmp_path / "acme.html"
    cli = CliRunner()
    res = cli.invoke(main, ["report", "--client", "acme", "--month", "2026-11", "-i", str(inv),
                            "-o", str(out)])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Europe/Berlin" in html and "Sat 22:00-Sun 04:00" in html
    res = cli.invoke(main, ["report", "--client", "acme", "--since", "2026-11-28",
                            "--until", "2026-11-30", "--format", "md", "-o", "-"])
    assert res.exit_code == 0, res.output
    assert "2026-11-28 to 2026-11-30" in res.stdout
    for args, message in (
            (["--month", "2026-11"], "--month/--since need --client"),
            (["--client", "acme", "--month", "2026-11", "--last"], "report a period"),
            (["--client", "acme", "--month", "11/2026"], "expected YYYY-MM"),
            (["--client", "nobody", "--month", "2026-11"], "no hosts known for client")):
        res = cli.invoke(main, ["report", *args, "-o", "-"])
        assert res.exit_code != 0 and message in res.output, res.output


def test_client_report_of_last_run_skips_another_clients_rerun(state_dir: Path) -> None:
    """Issue 19: a one-host ad hoc rerun must not make the next client report fail with
    'no results for client'."""
    h = History(state_dir / "history.sqlite3")
    clients(h, {"web1": "acme", "mail": "globex"})
    now = datetime.now(UTC)
    record(h, now - timedelta(hours=2), [("web1", "disk.usage", OK), ("mail", "disk.usage", OK)],
           meta={"clients": {"web1": "acme", "mail": "globex"}})
    rerun = record(h, now - timedelta(hours=1), [("mail", "disk.usage", OK)], playbook="adhoc",
                   meta={"clients": {"mail": "globex"}})
    h.close()
    res = CliRunner().invoke(main, ["report", "--client", "acme", "--format", "md", "-o", "-"])
    assert res.exit_code == 0, res.output
    assert "web1" in res.stdout
    res = CliRunner().invoke(main, ["report", "--client", "globex", "--format", "md", "-o", "-"])
    assert res.exit_code == 0 and rerun in res.stdout
    res = CliRunner().invoke(main, ["report", "--client", "nobody", "-o", "-"])
    assert res.exit_code != 0 and "has results for client 'nobody'" in res.output
