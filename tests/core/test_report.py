"""Reports: HTML escaping and sections, Markdown, grouping by client, sparklines from
history, the template search order, report: validation, and `upkeeper report`."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from upkeeper import hookimpl
from upkeeper.after_run.report import (
    ReportConfig,
    md_escape,
    remember_clients,
    render_report,
    sparkline_svg,
    sparkline_text,
    write_reports,
)
from upkeeper.after_run.sections import format_metric, pick_metrics, section_of
from upkeeper.after_run.validate import validate_report
from upkeeper.cli.main import main
from upkeeper.engine.playbook import load_playbook
from upkeeper.models import Host, ReportSection, Result, RunRecord, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=timezone.utc)
HOSTILE = '<script>alert("x")</script>'
#: The sections the built-in plugins register (core knows none of them by name).
SECTIONS = get_plugin_manager().registry.report_sections


class Page(HTMLParser):
    """Collects tags, headings, svg polylines and text of a rendered report."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.headings: list[str] = []
        self._in_h = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3"):
            self._in_h = True
            self.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3"):
            self._in_h = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_h:
            self.headings[-1] += data

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def seeded(history: History, days: int = 6) -> RunRecord:
    """Runs one day apart for two clients; the last run is returned with its hosts."""
    run = RunRecord("none", "nightly")
    for day in range(days):
        when = NOW - timedelta(days=days - 1 - day)
        run = RunRecord(f"run{day}", "nightly", started=when, finished=when)
        history.start_run(run)
        rows = [
            ("web1", "patching.status", Status.WARN, "3 security updates pending",
             {"pending_total": 10 + day, "pending_security": 3, "reboot_required": 1}),
            ("web1", "disk.usage", Status.CRIT if day == days - 1 else Status.OK,
             f"/var {60 + day * 6}% used" + (f" {HOSTILE}" if day == days - 1 else ""),
             {"/var:used_pct": 60 + day * 6, "/var:days_to_full": 30 - day * 5,
              "/var:used_bytes": (60 + day * 6) * 2**30}),
            ("fs1", "backup.restic", Status.OK, "snapshot 5 h old",
             {"age_hours": 5 + day % 2, "snapshot_count": 20 + day, "restore_ok": 1}),
            ("fs1", "system.uptime", Status.OK, "up 3 days", {"uptime_days": 3 + day}),
        ]
        for host, check, status, summary, metrics in rows:
            r = Result(status, summary, metrics=dict(metrics), host=host, check=check,
                       name=check, started=when)
            history.add_result(run.run_id, r)
            run.results.append(r)
        history.finish_run(run)
    run.hosts = {"web1": Host("web1", {"client": "Acme <Corp>"}),
                 "fs1": Host("fs1", {"client": "Beta"})}
    return run


@pytest.fixture
def history() -> History:
    return History(":memory:")


def test_client_report_html_sections_trends_and_escaping(history: History) -> None:
    run = seeded(history)
    html = render_report(run, history, template="client", fmt="html", now=NOW,
                         sections=SECTIONS)
    page = Page(html)
    assert page.all("script") == [] and HOSTILE in "".join(page.text)
    assert "&lt;script&gt;" in html
    assert "Acme <Corp>: maintenance report" in page.headings
    assert "Beta: maintenance report" in page.headings
    h2 = [h.strip() for h in page.headings if h.strip().split(" ")[0] in
          ("Patch", "Backups", "Disks", "Other")]
    # Empty standard sections say so; "Other checks" appears only when there are some.
    assert h2 == ["Patch compliance WARN", "Backups", "Disks CRIT",
                  "Patch compliance", "Backups OK", "Disks", "Other checks OK"]
    polylines = [a for a in page.all("polyline")]
    assert len(polylines) >= 7
    assert all(len((p["points"] or "").split()) == 6 for p in polylines)
    # Self-contained: no external scripts, styles, images or fonts.
    assert not page.all("link") and not page.all("img")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html and "@import" not in html
    assert "@media print" in html and "max-width: 640px" in html


def test_sparkline_follows_history(history: History) -> None:
    run = seeded(history)
    html = render_report(run, history, template="client", fmt="html", client="Acme <Corp>",
                         now=NOW)
    page = Page(html)
    titles = [t for t in page.text if t.startswith("/var:used_pct:")]
    assert titles == ["/var:used_pct: min 60, max 90"]  # the SVG <title>
    rising = next(p["points"] for p in page.all("polyline"))
    ys = [float(pt.split(",")[1]) for pt in (rising or "").split()]
    assert ys == sorted(ys, reverse=True)  # pending_total grows: the line goes up
    assert "fs1" not in "".join(page.text)


def test_trend_window(history: History) -> None:
    run = seeded(history)
    html = render_report(run, history, template="client", fmt="html", now=NOW, trend_days=2)
    points = [len((p["points"] or "").split()) for p in Page(html).all("polyline")]
    assert points and set(points) == {3}


def test_old_run_shows_history_as_it_was(history: History) -> None:
    seeded(history)
    old = history.get_run("run2")
    assert old is not None
    page = Page(render_report(old, history, template="summary", fmt="html", now=NOW))
    assert [t for t in page.text if t.startswith("pending_total:")] == \
        ["pending_total: min 10, max 12"]


def test_sparkline_shapes() -> None:
    assert sparkline_svg([1.0]) == ""
    svg = sparkline_svg([0, 5, 10], width=100, height=20, label='a"<b>')
    assert 'points="2.0,18.0 50.0,10.0 98.0,2.0"' in svg
    assert 'aria-label="a&#34;&lt;b&gt;"' in svg
    assert 'points="2.0,10.0 50.0,10.0 98.0,10.0"' in sparkline_svg([4, 4, 4], 100, 20)
    assert sparkline_text([0, 7, 3.5, 7]) == "▁█▅█"
    assert sparkline_text([2, 2]) == "▄▄"


def test_markdown_report(history: History) -> None:
    run = seeded(history)
    md = render_report(run, history, template="client", fmt="md", now=NOW, sections=SECTIONS)
    assert "# Acme \\&lt;Corp\\&gt;: maintenance report" not in md
    assert "# Acme &lt;Corp&gt;: maintenance report" in md
    assert "## Patch compliance" in md and "## Disks" in md and "## Backups" in md
    assert "<script>" not in md
    disk = next(line for line in md.splitlines() if line.startswith("| web1 | disk.usage"))
    assert disk.count(" | ") == 4  # the hostile summary did not add cells
    assert "▁" in disk and "/var:used\\_pct 90%" in disk
    summary = render_report(run, history, template="summary", fmt="md", now=NOW)
    assert summary.startswith("# nightly\n") and "## Beta: OK" in summary


def test_md_escape() -> None:
    assert md_escape("a|b\n*c* <x> [l](u) `t`") == \
        "a\\|b \\*c\\* &lt;x&gt; \\[l\\](u) \\`t\\`"


@pytest.mark.parametrize(("check", "name", "value", "text"), [
    ("disk.usage", "/:used_bytes", 5 * 2**30, "5.0 GiB"),
    ("backup.restic", "total_size", 512, "512 B"),
    ("disk.usage", "/var:used_pct", 93.2, "93%"), ("backup.borg", "age_hours", 26.04, "26.0 h"),
    ("disk.usage", "/var:days_to_full", 6.2, "6.2 d"),
    ("patching.status", "reboot_required", 1, "yes"), ("backup.restic", "restore_ok", 0, "no"),
    ("patching.status", "pending_total", 12, "12"),
    ("disk.smart", "sda:temperature_c", 41, "41 °C"),
    ("patching.status", "days_since_patch", 12.25, "12.2 d"),
    ("backup.borg", "integrity_ok", 1, "yes"),
    # No section declares these: the name's convention decides.
    ("system.command", "data:used_pct", 95, "95%"), ("system.command", "log_bytes", 2048,
                                                     "2.0 KiB"),
    ("system.command", "queue_depth", 7, "7")])
def test_format_metric(check: str, name: str, value: float, text: str) -> None:
    assert format_metric(name, value, section_of(check, SECTIONS)) == text


def test_format_metric_from_a_plugin_function_and_a_broken_one() -> None:
    sec = ReportSection("acme", "Acme", ("acme.",), formats={
        "tickets": lambda v: f"{v:.0f} open", "*:ratio": lambda v: 1 / 0})
    assert format_metric("tickets", 3, sec) == "3 open"
    assert format_metric("db:ratio", 0.5, sec) == "0.5"  # a broken formatter: the number
    with pytest.raises(ValueError, match="unknown unit 'furlongs'"):
        ReportSection("bad", "Bad", ("bad.",), formats={"x": "furlongs"})
    with pytest.raises(ValueError, match="prefixes"):
        ReportSection("bad", "Bad", "bad.")  # type: ignore[arg-type]


def test_pick_metrics_groups_devices() -> None:
    disk = {"/var:used_pct": 1, "/:used_pct": 2, "/:days_to_full": 3, "/var:used_bytes": 4,
            "/var:days_to_full": 5, "sda:temperature_c": 40, "sda:ata_5": 0}
    assert pick_metrics(section_of("disk.usage", SECTIONS), disk) == [
        "/:used_pct", "/:days_to_full", "/var:used_pct", "/var:days_to_full",
        "sda:temperature_c", "sda:ata_5"]
    backup = {"restore_ok": 1, "age_hours": 3, "repository_size": 9, "integrity_ok": 1}
    assert pick_metrics(section_of("backup.borg", SECTIONS), backup) == [
        "age_hours", "integrity_ok", "restore_ok"]
    other = {f"m{i}": i for i in range(12)}
    assert len(pick_metrics(section_of("system.command", SECTIONS), other)) == 8


def test_core_knows_no_plugin_sections(history: History) -> None:
    """Without plugins every result is under "Other checks", and the report code names no
    plugin's checks or metrics."""
    run = seeded(history)
    page = Page(render_report(run, history, template="client", fmt="html", now=NOW))
    titles = {h.strip().split(" ")[0] for h in page.headings[1:]}
    assert "Other" in titles and not titles & {"Patch", "Backups", "Disks"}
    core = Path(__file__).resolve().parents[2] / "core" / "upkeeper"
    for path in [*(core / "after_run").rglob("*.py"), *(core / "after_run").rglob("*.j2"),
                 core / "cli" / "report.py"]:
        text = path.read_text()
        for needle in ('"patching.', '"backup.', '"disk.', "pending_security",
                       "days_to_full", "restore_ok"):
            assert needle not in text, f"{path} names {needle}"


def test_summary_html(history: History) -> None:
    run = seeded(history)
    page = Page(render_report(run, history, template="summary", fmt="html", now=NOW))
    assert page.headings[0] == "nightly"
    assert [h.split()[0] for h in page.headings[1:]] == ["Acme", "web1", "Beta", "fs1"]


def test_template_search_order(history: History, tmp_path: Path) -> None:
    run = seeded(history)
    user, plugin = tmp_path / "user", tmp_path / "plugin"
    user.mkdir()
    plugin.mkdir()
    (plugin / "client.html.j2").write_text("plugin client")
    (plugin / "brand.html.j2").write_text("plugin brand")
    (user / "brand.html.j2").write_text(
        '{% extends "builtin/client.html.j2" %}{% block title %}MSP Inc: {{ run.playbook }}'
        '{% endblock %}')

    class Brand:
        @hookimpl
        def upkeeper_register_template_dirs(self) -> list[str]:
            return [str(plugin)]

    dirs = get_plugin_manager(extra_plugins=[("brand", Brand())]).registry.template_dirs
    assert dirs == [str(plugin)]
    assert render_report(run, history, template="client", plugin_dirs=dirs) == "plugin client"
    assert render_report(run, history, template="brand", plugin_dirs=dirs) == "plugin brand"
    branded = render_report(run, history, template="brand", plugin_dirs=dirs,
                            template_dir=user, sections=SECTIONS)
    assert "<title>MSP Inc: nightly</title>" in branded and "Patch compliance" in branded
    assert render_report(run, history, template="summary", plugin_dirs=dirs,
                         template_dir=user).startswith("<!DOCTYPE html>")


def test_clients_remembered_for_later_reports(history: History) -> None:
    run = seeded(history)
    remember_clients(run, history)
    stored = history.get_run(run.run_id)
    assert stored is not None and stored.hosts == {}
    md = render_report(stored, history, template="summary", fmt="md", client="Beta")
    assert "fs1" in md and "web1" not in md


def test_write_reports_per_client(history: History, tmp_path: Path) -> None:
    run = seeded(history)
    cfg = ReportConfig(template="client", format="md", path="out/{client}/{date}-{run_id}.md")
    paths = write_reports(run, history, cfg, base=tmp_path, now=NOW)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths) == [
        "out/Acme_Corp/2026-11-26-run5.md", "out/Beta/2026-11-26-run5.md"]
    assert not list(tmp_path.rglob(".*.tmp"))


def pb_with_report(tmp_path: Path, report: Any) -> Any:
    path = tmp_path / "pb.yml"
    path.write_text(yaml.safe_dump({"name": "n", "hosts": "all", "checks": ["system.uptime"],
                                    "report": report}, sort_keys=False))
    return load_playbook(path)


def test_validate_report(tmp_path: Path) -> None:
    assert validate_report(pb_with_report(tmp_path, {"path": "r/{client}.html"})) == []
    path = tmp_path / "pb.yml"
    found = validate_report(pb_with_report(tmp_path, [
        {"template": "client", "format": "pdf", "path": "x"},
        {"template": "fancy", "path": "x"},
        {"path": "{customer}.html"},
        {"format": "md"},
        "report.html"]))
    lines = path.read_text().splitlines()

    def line(needle: str, after: int = 0) -> int:
        return next(i for i, t in enumerate(lines, 1) if needle in t and i > after)

    assert found[0].startswith(f"{path}:{line('format: pdf')}: report: format: Input should "
                               "be 'html' or 'md'")
    assert found[1] == (f"{path}:{line('template: fancy')}: report: no built-in template "
                        "'fancy' for html (built-ins: client, summary)")
    assert found[2] == (f"{path}:{line('customer')}: report path '{{customer}}.html': "
                        "unknown placeholder 'customer'")
    assert found[3] == f"{path}:{line('format: md')}: report: missing required key 'path'"
    assert found[4].endswith("report: each entry is a mapping with template, format and "
                             "path, not str")


def test_cli_report(history: History, tmp_path: Path) -> None:
    state = tmp_path / "state"
    h = History(state / "history.sqlite3")
    run = seeded(h)
    remember_clients(run, h)
    h.close()
    cli = CliRunner()
    out = tmp_path / "acme.html"
    res = cli.invoke(main, ["--state-dir", str(state), "report", "--last", "--client",
                            "Acme <Corp>", "--format", "html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "Disks" in out.read_text() and "fs1" not in out.read_text()
    res = cli.invoke(main, ["report", "--state-dir", str(state), "--run", "run2",
                            "--template", "summary", "--format", "md", "-o", "-"])
    assert res.exit_code == 0 and "Run run2" in res.output
    res = cli.invoke(main, ["--state-dir", str(state), "report", "--run", "nope", "-o", "-"])
    assert res.exit_code != 0 and "run nope not found" in res.output
    res = cli.invoke(main, ["--state-dir", str(state), "report", "--last", "--playbook",
                            "weekly", "-o", "-"])
    assert res.exit_code != 0 and "no runs of playbook 'weekly'" in res.output
    res = cli.invoke(main, ["--state-dir", str(state), "report", "--playbook", "nightly",
                            "--format", "md", "-o", "-"])
    assert res.exit_code == 0 and "run5" in res.output
    res = cli.invoke(main, ["--state-dir", str(state), "report", "-t", "fancy", "-o", "-"])
    assert res.exit_code != 0 and "template 'fancy.html.j2' not found" in res.output
    res = cli.invoke(main, ["--state-dir", str(tmp_path / "empty"), "report", "-o", "-"])
    assert res.exit_code != 0 and "no history" in res.output


def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(history: History, tmp_path: Path) -> None:
    run = seeded(history)
    page = tmp_path / "report.html"
    page.write_text(render_report(run, history, template="client", fmt="html", now=NOW))
    for width, name in ((1100, "desktop.png"), (390, "phone.png")):
        shot = tmp_path / name
        proc = subprocess.run(
            [str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu",
             f"--screenshot={shot}", f"--window-size={width},1400", page.as_uri()],
            capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == width
        assert len(data) > 20_000  # a blank page compresses to far less
