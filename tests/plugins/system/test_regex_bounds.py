"""User regexes cannot freeze a run: RE2 first, a killable child process otherwise."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upkeeper import CommandResult, Status
from upkeeper.engine.playbook import PlaybookError, load_playbook
from upkeeper.plugins import get_plugin_manager
from upkeeper_system.command import CommandParams, judge
from upkeeper_system.saferegex import MAX_PATTERN, search

EVIL = "^(a+)+$"
FORTY_THREE = "a" * 43 + "!"


@pytest.mark.slow
def test_catastrophic_pattern_on_hostile_output_returns_at_once_in_a_real_run(
        tmp_path: Path) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("name: evil\nchecks:\n  - name: evil\n    check: system.command\n"
                  f"    timeout: 5\n    params: {{command: 'echo {FORTY_THREE}', "
                  f"ok_regex: '{EVIL}'}}\n")
    proc = subprocess.run([sys.executable, "-m", "upkeeper", "--state-dir",
                           str(tmp_path / "s"), "run", str(pb), "--format", "json"],
                          capture_output=True, timeout=120)
    (r,) = json.loads(proc.stdout)["results"]
    assert r["status"] == "CRIT" and "output does not match" in r["summary"]
    assert proc.returncode == 2


def test_re2_semantics_match_python_re_for_ordinary_patterns() -> None:
    text = "disk ok\nload 5.5 users 3\nlast line"
    for pattern in (r"^load (\d+(?:\.\d+)?)", r"users \d+$", r"(?i)LAST", r"^disk ok$",
                    r"nothing here", r"(?P<n>\d)"):
        import re

        m = re.search(pattern, text, re.MULTILINE)
        f = search(pattern, text, 5)
        assert (f is None) == (m is None), pattern
        if m and f:
            assert f.text == m.group(0) and f.groups == m.groups(), pattern


@pytest.mark.slow
def test_patterns_re2_rejects_run_in_a_child_with_a_deadline() -> None:
    f = search(r"(\w)\1", "hello", 10)  # a backreference: not RE2
    assert f is not None and f.text == "ll" and f.groups == ("l",)
    res = CommandResult("x", 0, FORTY_THREE + "\n")
    p = CommandParams(command="x", ok_regex=r"^(a+)+\1$")
    t0 = time.monotonic()
    r = judge(res, p, time_limit=1.0)
    assert time.monotonic() - t0 < 30
    assert r.status is Status.UNKNOWN
    assert "did not finish within 1.0s" in r.summary and "45 characters" in r.summary


def test_value_regex_groups_through_re2() -> None:
    res = CommandResult("x", 0, "queue=17 items\n")
    r = judge(res, CommandParams(command="x", value_regex=r"queue=(\d+)", warn=10))
    assert r.status is Status.WARN and r.metrics["value"] == 17


@pytest.mark.parametrize(("pattern", "message"), [
    ("(unclosed", "invalid regex '(unclosed'"),
    ("a" * (MAX_PATTERN + 1), f"at most {MAX_PATTERN}"),
])
def test_bad_patterns_fail_playbook_validation_with_a_line(tmp_path: Path, pattern: str,
                                                           message: str) -> None:
    pb = tmp_path / "pb.yml"
    pb.write_text("name: bad\nchecks:\n  - system.command:\n      command: 'true'\n"
                  f"      warn_regex: '{pattern}'\n")
    with pytest.raises(PlaybookError) as err:
        load_playbook(pb, get_plugin_manager().registry)
    assert f"{pb}:5" in str(err.value) and message in str(err.value)
