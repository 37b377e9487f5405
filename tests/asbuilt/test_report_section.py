"""The client report's ``docs`` section: documented hosts, changes, drift and health of
each client, in HTML and Markdown, hostile facts escaped."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tests.asbuilt.factsgen import DAY, NOW, doc, iso_in, later, store
from upkeeper.after_run.asbuilt_step import docs_summaries
from upkeeper.after_run.report import render_report
from upkeeper.models import Host, Result, RunRecord, Status
from upkeeper.store.history import History


def _run(hist: History) -> RunRecord:
    when = datetime.fromtimestamp(NOW, tz=timezone.utc)
    run = RunRecord(run_id="r9", playbook="nightly", started=when, finished=when)
    run.hosts = {"web1": Host("web1", vars={"client": "acme"})}
    run.results = [Result(Status.OK, "up", host="web1", check="system.uptime", started=when)]
    return run


def test_docs_section_in_html_and_markdown(hist: History) -> None:
    first = doc("web1", "m-web1", NOW - 70 * DAY)
    store(hist, first)

    def edit(d: dict[str, Any]) -> None:
        d["sections"]["admins"]["items"].append({"name": "<img src=x onerror=alert(1)>",
                                                 "group": "sudo"})
        d["sections"]["certificates"]["items"][0]["not_after"] = iso_in(20)
    store(hist, later(first, 69, edit))
    run = _run(hist)
    source = lambda names: docs_summaries(hist, None, names)  # noqa: E731
    html = render_report(run, hist, fmt="html", docs=source)
    section = html[html.index('class="section-docs"'):]
    assert "1 host documented" in section and "expires in 21 days" in section
    assert "&lt;img src=x onerror=alert(1)&gt;" in section and "<img" not in section
    md = render_report(run, hist, fmt="md", docs=source)
    assert "## Documentation" in md and "admins" in md and "<img" not in md
    assert "## Documentation" not in render_report(run, hist, fmt="md")


def test_upkeeper_report_command_has_the_docs_section(state_dir, tmp_path) -> None:
    from click.testing import CliRunner

    from upkeeper.cli.main import main

    hist = History(state_dir / "history.sqlite3")
    store(hist, doc("web1", "m-web1", NOW - DAY))
    run = _run(hist)
    hist.start_run(run)
    for r in run.results:
        hist.add_result(run.run_id, r)
    hist.finish_run(run)
    hist.set_state("web1", "_upkeeper", "client", "acme")
    hist.close()
    out = tmp_path / "report.md"
    result = CliRunner().invoke(main, ["report", "--last", "--format", "md", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "## Documentation" in out.read_text()
