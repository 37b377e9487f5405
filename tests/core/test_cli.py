"""The upkeeper command as a user runs it: real processes, real history on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import processes_mentioning, wait_for

# Each test starts the command as a user would (a new Python process, ~1 s each).
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DAILY = str(ROOT / "playbooks" / "daily-health.yml")


def upk(*args: str, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})},
                          cwd=cwd or ROOT)


def test_run_json_document(state_dir):
    res = upk("run", DAILY, "--format", "json")
    doc = json.loads(res.stdout)
    assert set(doc) >= {"run_id", "playbook", "started", "finished", "status", "results"}
    assert doc["playbook"] == "Daily health"
    assert doc["results"], res.stderr
    for r in doc["results"]:
        assert set(r) >= {"host", "check", "status", "summary", "metrics", "details",
                          "changed", "duration_s"}
        assert r["host"] == "localhost"
        assert r["status"] in ("OK", "WARN", "CRIT", "UNKNOWN", "SKIPPED")
    codes = {"OK": 0, "WARN": 1, "CRIT": 2, "UNKNOWN": 3}
    assert res.returncode == codes[doc["status"]]
    assert (state_dir / "history.sqlite3").exists()

    hist = upk("history", "--format", "json")
    assert {r["check"] for r in json.loads(hist.stdout)} >= {"system.uptime"}
    series = upk("history", "--host", "localhost", "--metric", "uptime_days", "--format", "json")
    assert len(json.loads(series.stdout)) == 1


def test_run_plain_lines_off_a_terminal(tmp_path):
    book = tmp_path / "pb.yml"
    book.write_text("name: plain\nchecks:\n  - system.command: {command: 'echo fine'}\n"
                    "  - system.command: {command: 'echo bad; exit 2'}\n")
    res = upk("run", str(book))
    assert res.returncode == 2
    assert "OK       localhost system.command: fine" in res.stdout
    assert "CRIT     localhost system.command: bad" in res.stdout
    # the first line is the verdict, as monitoring systems read it
    assert res.stdout.splitlines()[0].startswith("CRIT: 1 OK, 1 CRIT - run ")
    # each result line on one stream only: under 2>&1 no line shows twice
    assert "system.command" not in res.stderr


@pytest.mark.parametrize(("body", "needle"), [
    ("name: x\nchecks:\n  - system.uptme: {}\n", ":3:5: unknown check 'system.uptme' (did you"),
    ("name: x\nchecks:\n  - system.uptime: {warn_days: soon}\n", ":3:"),
    ("name: x\nchecks:\n  - system.command: {command: '{{ nope }}'}\n",
     "undefined variable 'nope' for host localhost"),
    ("name: x\nchecks: [\n", "invalid YAML"),
])
def test_invalid_input_exits_3_with_one_line(tmp_path, body, needle):
    book = tmp_path / "bad.yml"
    book.write_text(body)
    res = upk("run", str(book), "--format", "json")
    assert res.returncode == 3
    assert res.stderr == ""
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 3 and doc["error"].startswith(str(book))
    assert needle in doc["error"]
    res = upk("run", str(book))
    assert res.returncode == 3 and res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"upkeeper: error: {book}")
    assert needle in lines[0]


def test_missing_files_exit_3(tmp_path):
    assert upk("run", str(tmp_path / "nope.yml")).returncode == 3
    res = upk("run", DAILY, "-i", str(tmp_path / "nope.ini"))
    assert res.returncode == 3 and "nope.ini" in res.stderr


def test_validate_schema_checks_plugins():
    assert upk("validate", DAILY).returncode == 0
    schema = json.loads(upk("schema", "playbook").stdout)
    assert schema["title"] == "upkeeper playbook"
    checks = {c["name"]: c for c in json.loads(upk("checks", "--format", "json").stdout)}
    assert "warn_days" in checks["system.uptime"]["params"]["properties"]
    assert checks["system.uptime"]["plugin"] == "system"
    plugins = {p["name"]: p for p in json.loads(upk("plugins", "--format", "json").stdout)}
    assert plugins["system"]["source"] == "built-in"


def test_disable_plugin_flag():
    res = upk("-p", "no:system", "run", DAILY)
    assert res.returncode == 3 and "unknown check 'system.uptime'" in res.stderr
    res = upk("run", DAILY, env={"UPKEEPER_DISABLE_PLUGINS": "system"})
    assert res.returncode == 3


def test_check_mode_and_limit(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[here]\nlocalhost ansible_connection=local\n"
                   "[there]\nother ansible_connection=local\n")
    res = upk("run", DAILY, "-i", str(inv), "--limit", "here", "--check", "--format", "json")
    doc = json.loads(res.stdout)
    assert {r["host"] for r in doc["results"]} == {"localhost"}
    assert doc["check_mode"] is True
    res = upk("run", DAILY, "-i", str(inv), "--limit", "nomatch")
    assert res.returncode == 3 and "no hosts match" in res.stderr


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_keeps_what_finished(tmp_path, state_dir):
    import signal

    started = tmp_path / "second-started"
    book = tmp_path / "pb.yml"
    book.write_text("name: interrupt\nchecks:\n  - system.command: {command: 'echo first'}\n"
                    f"  - system.command: {{command: 'touch {started}; sleep 300'}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "upkeeper", "run", str(book)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    wait_for(lambda: started.exists() or proc.poll() is not None,
             "the second command to start")
    assert proc.poll() is None, "the run ended before its second check ran"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    assert "interrupted" in out
    wait_for(lambda: not processes_mentioning(str(started)),
             "the interrupted command to be killed")
    hist = json.loads(upk("history", "--format", "json").stdout)
    summaries = sorted(r["summary"] for r in hist)
    assert summaries[0] == "first" and "interrupted" in summaries[1]


def test_unreachable_ssh_host_is_unknown_and_the_rest_runs(tmp_path, state_dir):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connection refused
    inv = tmp_path / "inv.ini"
    inv.write_text("localhost ansible_connection=local\n"
                   f"dead ansible_host=127.0.0.1 ansible_port={port} ansible_user=nobody\n")
    t0 = time.monotonic()
    res = upk("run", DAILY, "-i", str(inv), "--format", "json")
    assert time.monotonic() - t0 < 60
    assert res.returncode in (2, 3), res.stderr
    doc = json.loads(res.stdout)
    by_host: dict[str, list[dict]] = {}
    for r in doc["results"]:
        by_host.setdefault(r["host"], []).append(r)
    assert all(r["status"] == "UNKNOWN" for r in by_host["dead"])
    assert f"127.0.0.1:{port}" in by_host["dead"][0]["summary"]
    assert any(r["status"] == "OK" for r in by_host["localhost"])
    stored = json.loads(upk("history", "--host", "dead", "--format", "json").stdout)
    assert len(stored) == len(by_host["dead"])


def test_unusable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = upk("run", DAILY, env={"UPKEEPER_STATE_DIR": str(blocker / "state")})
    assert res.returncode == 3
    assert res.stderr.startswith("upkeeper: error: cannot open the history database")
    assert "Traceback" not in res.stderr
