"""The dashboard's monthly report download shows the same fixes (remediation's audit
trail) and documentation changes (as-built snapshots) as ``upkeeper report --month``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from starlette.testclient import TestClient

from tests.monthly.helpers import at
from tests.monthly.test_doc_changes import documented
from tests.monthly.test_report import november
from tests.web.conftest import FAST_HASHER
from upkeeper.cli.main import main
from upkeeper.remediation.audit import AuditLog
from upkeeper.store.history import History
from upkeeper.web.app import create_app
from upkeeper.web.site import WebConfig


def _section(text: str) -> str:
    start = text.index("## Fixes and documentation")
    return text[start:text.index("\n## ", start + 5)]


def test_download_and_cli_show_the_same_fixes_and_doc_changes(state_dir: Path) -> None:
    history = History(state_dir / "history.sqlite3")
    november(history)
    documented(history)
    audit = AuditLog(history, clock=lambda: at("2026-11-15 04:00"))
    subject = "web1/disk.usage/clean-tmp"
    audit.append("plan", "schedule", subject, {"plan": {"summary": "removed 2 GB of"
                                                                   " /var/tmp"}}, host="web1")
    audit.append("verify", "schedule", subject,
                 {"verified": True, "trigger": {"name": "disk.usage"}}, host="web1")
    with TestClient(create_app(history, WebConfig(hasher=FAST_HASHER)),
                    base_url="http://127.0.0.1:8470") as web:
        page = web.get("/clients/acme/report", params={"month": "2026-11", "format": "md"})
    history.close()
    assert page.status_code == 200, page.text
    res = CliRunner().invoke(main, ["report", "--client", "acme", "--month", "2026-11",
                                    "--format", "md", "-o", "-"])
    assert res.exit_code == 0, res.output
    web_part, cli_part = _section(page.text), _section(res.stdout)
    assert web_part == cli_part
    assert "removed 2 GB of /var/tmp" in web_part and "fixed and verified" in web_part
    assert "web1: admins: added mallory sudo" in web_part
    assert "db1: no longer reporting" in web_part
