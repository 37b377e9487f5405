"""``upkeeper run`` with a playbook whose restic password is templated from a host var."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import RESTIC_PASSWORD, Repo, needs_restic


def process_command_lines() -> list[str]:
    """What ``ps`` shows: every process's command line."""
    out = []
    for p in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(p.read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
        except OSError:
            continue
    return out


@needs_restic
@pytest.mark.slow
def test_upkeeper_run_restic_playbook_json(restic_repo: Repo, tmp_path: Path,
                                           state_dir: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      restic_password: {json.dumps(RESTIC_PASSWORD)}\n")
    playbook = tmp_path / "backup-verify.yml"
    playbook.write_text(
        "name: Backup verify\nhosts: all\nchecks:\n"
        "  - name: restic nightly\n    check: backup.restic\n    params:\n"
        f"      repository: {json.dumps(str(restic_repo.path))}\n"
        '      password: "{{ restic_password }}"\n'
        "      host: web01\n      warn_age: 26h\n      restore_sample: 2\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "upkeeper", "run", str(playbook), "-i", str(inventory),
         "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen_restic = False
    leaked = []
    while proc.poll() is None:
        for line in process_command_lines():
            seen_restic = seen_restic or line.startswith("restic ")
            if RESTIC_PASSWORD in line:
                leaked.append(line)
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert not leaked, "password visible in a process command line"
    assert seen_restic, "the process scan never saw restic running"
    assert proc.returncode == 0, err
    doc = json.loads(out)
    [result] = doc["results"]
    assert result["status"] == "OK", result["summary"]
    assert result["check"] == "backup.restic" and result["name"] == "restic nightly"
    assert "test restore of 2 files OK" in result["summary"]
    assert result["metrics"]["restore_ok"] == 1
    assert RESTIC_PASSWORD not in out + err
    for f in state_dir.rglob("*"):
        if f.is_file():
            assert RESTIC_PASSWORD.encode() not in f.read_bytes(), f"password stored in {f}"
