"""patching.apply never changes a host without maintenance_windows unless told to.

The real runner and the real ``patching.apply`` run against a scripted apt host
(nothing is installed anywhere); the CLI is run on a pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from upkeeper.models import Host, Status

from .scripted import run_scripted
from .test_apply import AptHost


def run(tmp_path: Path, extra: str = "", **kw: Any) -> tuple[Any, dict[str, AptHost]]:
    host = Host("bare", vars={"ansible_connection": "scripted"}, groups=["all"])
    return run_scripted(tmp_path, f"name: patch\nhosts: all\n{extra}checks:\n"
                                  "  - patching.apply:\n      reboot: never\n", [host], **kw)


def test_apply_is_skipped_on_a_host_without_windows(tmp_path: Path) -> None:
    record, scripted = run(tmp_path)
    (r,) = record.results
    assert r.status is Status.SKIPPED and not r.changed
    assert "patching.apply would change bare now" in r.summary
    assert "no maintenance_windows" in r.summary
    assert "allow_anytime: true" in r.summary and "--now" in r.summary
    assert "bare" not in scripted or not scripted["bare"].installed


@pytest.mark.parametrize("how", ["playbook", "now"])
def test_apply_runs_when_allowed_explicitly(tmp_path: Path, how: str) -> None:
    if how == "playbook":
        record, scripted = run(tmp_path, extra="allow_anytime: true\n")
    else:
        record, scripted = run(tmp_path, allow_anytime=True)
    (r,) = record.results
    assert r.status is Status.OK, r.summary
    assert r.changed and scripted["bare"].installed


def test_check_mode_needs_no_permission_and_changes_nothing(tmp_path: Path) -> None:
    record, scripted = run(tmp_path, check_mode=True)
    (r,) = record.results
    assert r.status is not Status.SKIPPED, r.summary
    assert not r.changed and not scripted["bare"].installed


@pytest.mark.skipif(sys.platform != "linux", reason="pseudo-terminal and /bin/sh stand-ins")
def test_cli_on_a_terminal_prints_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    # Defence in depth: package tools resolve to stand-ins that only record their call.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("apt-get", "apt", "dpkg", "dnf", "yum", "zypper", "shutdown", "reboot",
                 "systemctl"):
        stub = bin_dir / tool
        stub.write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\n")
        stub.chmod(0o755)
    pb = tmp_path / "patch.yml"
    pb.write_text("name: patch\nhosts: all\nchecks:\n"
                  "  - name: patch\n    check: patching.apply\n"
                  "    params: {reboot: never, refresh: false}\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "UPKEEPER_STATE_DIR": str(tmp_path / "state")}
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "upkeeper", "run", str(pb)],
                              stdin=secondary, stdout=secondary, stderr=subprocess.PIPE,
                              env=env, timeout=120)
    finally:
        os.close(secondary)
        os.close(primary)
    err = proc.stderr.decode()
    assert proc.returncode == 3, err
    assert "would change hosts that have no maintenance_windows" in err
    assert "localhost: patch (patching.apply)" in err and "--now" in err
    assert not calls.exists(), calls.read_text()
    assert not (tmp_path / "state" / "history.sqlite3").exists()
