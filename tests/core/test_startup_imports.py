"""What ``upkeeper run`` imports: the modules of the checks and playbook sections it uses,
not those of every plugin and feature (start-up time is most of a fleet run's overhead;
bench/startup.py measures it, this test only checks the imports, never a time)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

RUN_AND_LIST_MODULES = """
import atexit, json, runpy, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv[0] = "upkeeper"
runpy.run_module("upkeeper", run_name="__main__")
"""

#: Imported only by playbooks that need them (a report, notify channels, a schedule,
#: the checks of other plugins, a regex in system.command), by notifiers when they send,
#: or never by a run.
NOT_FOR_A_PLAIN_RUN = (
    "jinja2", "smtplib", "urllib.request", "http.client", "rich", "re2",
    "upkeeper.after_run.report", "upkeeper.after_run.report_config",
    "upkeeper.after_run.notify_config", "upkeeper.after_run.targets",
    "upkeeper.schedule.specs",
    "upkeeper_backup.restic", "upkeeper_backup.borg", "upkeeper_backup.files",
    "upkeeper_backup.wbadmin", "upkeeper_disk.smart", "upkeeper_disk.usage",
    # Plugins are found without importlib.metadata (upkeeper.entrypoints), pydantic's
    # plugin loader is not imported while its plugins are off (upkeeper.cli.entry), and
    # the email package is the e-mail notifier's only when it sends.
    "importlib.metadata", "email", "email.message", "zipfile", "shutil",
)


def _modules_of_run(tmp_path: Path, playbook: str) -> tuple[set[str], dict[str, object]]:
    book = tmp_path / "pb.yml"
    book.write_text(textwrap.dedent(playbook))
    listing = tmp_path / "modules.json"
    res = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), "run",
                          str(book), "--format", "json"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    doc = json.loads(res.stdout)
    return set(json.loads(listing.read_text())), doc


def test_a_plain_run_imports_only_what_it_uses(tmp_path):
    modules, doc = _modules_of_run(tmp_path, """
        name: plain
        hosts: all
        checks:
          - system.uptime: {warn_days: 100000}
          - system.command: {command: "true"}
    """)
    assert [r["status"] for r in doc["results"]] == ["OK", "OK"], doc
    assert {"upkeeper_system.uptime", "upkeeper_system.command"} <= modules
    assert sorted(set(NOT_FOR_A_PLAIN_RUN) & modules) == []


def test_sections_and_checks_a_playbook_uses_are_imported(tmp_path):
    """The other side: the same run with a report, notify and a schedule loads them (the
    list above is not passing because nothing is ever imported)."""
    modules, doc = _modules_of_run(tmp_path, f"""
        name: full
        hosts: all
        schedule: {{every: day, at: "03:00"}}
        notify:
          min_status: CRIT
          channels:
            - webhook: {{url: "http://127.0.0.1:9/hook"}}
        report: {{template: summary, format: md, path: "{tmp_path}/report.md"}}
        checks:
          - system.uptime: {{warn_days: 100000}}
          - system.command: {{command: "echo fine", ok_regex: "^fine"}}
          - disk.usage: {{}}
    """)
    assert all(r["status"] in ("OK", "WARN") for r in doc["results"]), doc
    assert {"jinja2", "upkeeper.after_run.report", "upkeeper.after_run.notify_config",
            "upkeeper.schedule.specs", "re2", "upkeeper_disk.usage"} <= modules
    assert (tmp_path / "report.md").exists()
