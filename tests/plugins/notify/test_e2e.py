"""End to end through the CLI: `upkeeper run` with notify: (loopback SMTP and webhook) and
report:, four runs OK -> CRIT -> CRIT -> OK, then `upkeeper report --last`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from upkeeper_notify.testserver import SMTP_PASSWORD, SMTP_USER, SMTPServer, WebhookServer


@pytest.mark.slow
def test_cli_run_notifies_twice_and_writes_reports(tmp_path: Path, smtp: SMTPServer,
                                                   webhook: WebhookServer,
                                                   state_dir: Path) -> None:
    fill = tmp_path / "fill_pct"
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "client": "Acme"}}}}))
    playbook = tmp_path / "nightly.yml"
    playbook.write_text(yaml.safe_dump({
        "name": "nightly",
        "hosts": "all",
        "checks": [{"name": "data volume", "check": "system.command",
                    "params": {"command": f"echo used=$(cat {fill})", "value_regex": r"used=(\d+)",
                               "warn": 80, "crit": 90, "metric": "data:used_pct"}}],
        "notify": {"renotify": "24h", "channels": [
            {"email": {"host": smtp.host, "port": smtp.port, "username": SMTP_USER,
                       "password": "{{ env.E2E_SMTP_PASSWORD }}", "from": "upkeeper@msp.example",
                       "to": "noc@msp.example", "ca_file": smtp.ca_file}},
            {"webhook": {"url": webhook.url + "/hook", "format": "teams"}}]},
        "report": {"template": "client", "format": "html", "path": "reports/{client}.html"},
    }, sort_keys=False))
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(state_dir),
           "E2E_SMTP_PASSWORD": SMTP_PASSWORD}
    cmd = [sys.executable, "-m", "upkeeper"]
    codes = []
    for pct in (50, 95, 96, 40):
        fill.write_text(str(pct))
        proc = subprocess.run([*cmd, "run", str(playbook), "-i", str(inventory)], env=env,
                              capture_output=True, text=True, timeout=60)
        codes.append(proc.returncode)
        assert SMTP_PASSWORD not in proc.stdout + proc.stderr
    assert codes == [0, 2, 2, 0]
    subjects = [m["Subject"] for m in smtp.mailbox.messages]
    assert len(subjects) == 2
    assert subjects[0].startswith("[upkeeper] CRIT: Acme/localhost data volume:")
    assert subjects[1].startswith("[upkeeper] RECOVERED: Acme/localhost data volume:")
    assert len(webhook.hits) == 2
    assert webhook.hits[0].json()["attachments"][0]["content"]["type"] == "AdaptiveCard"
    html = (tmp_path / "reports" / "Acme.html").read_text()
    assert "Acme: maintenance report" in html and "<polyline" in html
    out = tmp_path / "last.html"
    proc = subprocess.run([*cmd, "report", "--last", "--client", "Acme", "--format", "html",
                           "-o", str(out)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "Acme: maintenance report" in text and "data volume" in text
    assert text.count("<polyline") >= 1 and "data:used_pct" in text
