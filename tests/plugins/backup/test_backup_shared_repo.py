"""Hosts sharing one repository, run in parallel by the real runner (``upkeeper run``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    BORG_PASSPHRASE,
    FLEET,
    RESTIC_PASSWORD,
    Repo,
    needs_borg,
    needs_restic,
    wrapper,
)


def run_fleet(tmp_path: Path, check: str, params: dict[str, Any], secret: str,
              ) -> list[dict[str, Any]]:
    """``upkeeper run`` over FLEET as local-transport hosts (default forks: all at once)."""
    hosts = "".join(f"    {h}:\n      ansible_connection: local\n      backup_host: {h}\n"
                    for h in FLEET)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(f"all:\n  vars:\n    repo_secret: {json.dumps(secret)}\n"
                         f"  hosts:\n{hosts}")
    playbook = tmp_path / "shared.yml"
    lines = "".join(f"      {k}: {json.dumps(v)}\n" for k, v in params.items())
    playbook.write_text(f"name: shared repository\nhosts: all\nchecks:\n"
                        f"  - name: verify\n    check: {check}\n    params:\n{lines}")
    proc = subprocess.run(
        [sys.executable, "-m", "upkeeper", "run", str(playbook), "-i", str(inventory),
         "--format", "json"], capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    results: list[dict[str, Any]] = json.loads(proc.stdout)["results"]
    assert sorted(r["host"] for r in results) == sorted(FLEET), proc.stderr
    return results


def tool_calls(log: Path, subcommand: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.split()[:1] == [subcommand]]


@needs_restic
@pytest.mark.slow
def test_hosts_sharing_a_restic_repository_do_not_warn_each_other(
        restic_fleet: Repo, tmp_path: Path, state_dir: Path) -> None:
    log = tmp_path / "restic.log"
    restic = wrapper(tmp_path / "restic", shutil.which("restic") or "restic", log=log)
    results = run_fleet(tmp_path, "backup.restic", {
        "repository": str(restic_fleet.path), "password": "{{ repo_secret }}",
        "host": "{{ backup_host }}", "integrity": True, "restore_sample": 2,
        "restic_bin": restic}, RESTIC_PASSWORD)
    for r in results:
        assert r["status"] == "OK", f"{r['host']}: {r['summary']}"
        assert "lock" not in r["summary"], f"{r['host']}: {r['summary']}"
        assert "restic check OK" in r["summary"]
    # One integrity check for the repository in this run; the other hosts share it.
    assert len(tool_calls(log, "check")) == 1
    shared = [r for r in results if "checked once in this run, for" in r["summary"]]
    assert len(shared) == len(FLEET) - 1
    # Each host still restored its own files, with nothing left locked behind.
    assert len(tool_calls(log, "restore")) == len(FLEET)
    assert not any((restic_fleet.path / "locks").iterdir())


@needs_borg
@pytest.mark.slow
def test_hosts_sharing_a_borg_repository_do_not_warn_each_other(
        borg_fleet: Repo, tmp_path: Path, state_dir: Path) -> None:
    log = tmp_path / "borg.log"
    borg = wrapper(tmp_path / "borg", shutil.which("borg") or "borg", log=log)
    # A one-second lock wait stands for a check longer than any lock_wait: siblings that
    # collided with it would give up and WARN.
    results = run_fleet(tmp_path, "backup.borg", {
        "repository": str(borg_fleet.path), "passphrase": "{{ repo_secret }}",
        "glob_archives": "{{ backup_host }}-*", "integrity": True, "restore_sample": 2,
        "lock_wait": 1, "borg_bin": borg}, BORG_PASSPHRASE)
    for r in results:
        assert r["status"] == "OK", f"{r['host']}: {r['summary']}"
        assert "lock" not in r["summary"], f"{r['host']}: {r['summary']}"
        assert "borg check OK" in r["summary"]
        assert f"latest archive {r['host']}-1" in r["summary"]
    assert len(tool_calls(log, "check")) == 1
    assert len(tool_calls(log, "extract")) == len(FLEET)
    assert not (borg_fleet.path / "lock.exclusive").exists()
