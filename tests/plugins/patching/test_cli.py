"""End to end: ``upkeeper run`` with the patching playbooks on this machine (local inventory)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from .helpers import DATA

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs an apt machine")]


def run(upkeeper_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*upkeeper_cmd, "run", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_patch_status_json_on_this_machine(upkeeper_cmd):
    proc = run(upkeeper_cmd, str(DATA / "playbooks" / "patch-status.yml"), "--format", "json")
    doc = json.loads(proc.stdout)
    [res] = doc["results"]
    assert res["host"] == "localhost" and res["check"] == "patching.status"
    assert res["status"] in ("OK", "WARN", "CRIT"), res["summary"]
    assert proc.returncode == {"OK": 0, "WARN": 1, "CRIT": 2}[res["status"]]
    metrics = res["metrics"]
    assert set(metrics) >= {"pending_total", "pending_security", "reboot_required"}
    assert metrics["pending_total"] == len(res["details"]["updates"])
    assert res["details"]["manager"] == "apt"


def test_weekly_playbook_in_check_mode_changes_nothing(upkeeper_cmd):
    before = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
                            capture_output=True, text=True, check=True).stdout
    proc = run(upkeeper_cmd, str(DATA / "playbooks" / "patch-weekly.yml"), "--check",
               "--format", "json")
    doc = json.loads(proc.stdout)
    patch = next(r for r in doc["results"] if r["name"] == "patch")
    assert patch["status"] == "OK" and patch["changed"] is False, patch["summary"]
    assert patch["summary"].startswith("check mode: would install")
    assert doc["check_mode"] is True
    after = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
                           capture_output=True, text=True, check=True).stdout
    assert before == after
