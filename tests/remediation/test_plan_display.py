"""A plan is shown to a person before they approve it: names in it come from the host
(file names any local user can choose, mount points), so an escape sequence in one must
not rewrite the terminal and hide what the plan does."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from upkeeper.cli.main import main
from upkeeper.cli.output import fix_lines
from upkeeper.remediation.approvals import Approvals
from upkeeper.store.history import History

#: Erase the line, go back to its start, and write something harmless-looking.
HIDE = "\x1b[2K\r/var/tmp/app/harmless.log\x1b]0;title\x07"


def _plan() -> dict[str, object]:
    return {"summary": f"free 1 MiB on /srv ({HIDE})",
            "changes": [{"delete": f"/srv/app/{HIDE}", "bytes": 4096}],
            "commands": [["find", "-P", "/srv/app", "-path", f"/srv/app/{HIDE}",
                          "-delete"]]}


def test_run_output_shows_plans_without_escape_sequences() -> None:
    lines = fix_lines([{"fix": "disk.cleanup", "host": "web1", "name": "disk.usage",
                        "outcome": "awaiting-approval", "summary": HIDE, "plan": _plan()}])
    assert len(lines) == 2 and "\x1b" not in "".join(lines) and "\r" not in "".join(lines)
    assert "harmless.log" in lines[1]


def test_fixes_show_prints_no_escape_sequences(tmp_path: Path) -> None:
    history = History(tmp_path / "history.sqlite3")
    asked = Approvals(history).request(host="web1", client="acme", check="disk.usage",
                                       fix="disk.cleanup", plan=_plan(), plan_hash="h1",
                                       actor="test")
    history.close()
    result = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "fixes", "show",
                                       asked.id])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\r" not in result.output
    assert "harmless.log" in result.output
    approved = CliRunner().invoke(main, ["--state-dir", str(tmp_path), "fixes", "approve",
                                         asked.id])
    assert approved.exit_code == 0 and "\x1b" not in approved.output
