"""Exit codes of bad command lines, JSON error documents and tables off a terminal, as a
monitoring system or a shell pipeline meets them: real processes, output through pipes."""

from __future__ import annotations

import json

import pytest

from tests.core.test_cli import DAILY, upk


@pytest.mark.parametrize("argv", [
    ("--bogus",),
    ("run",),                                   # missing argument
    ("run", DAILY, "--nope"),                   # unknown option of a subcommand
    ("run", DAILY, "--forks", "0"),             # BadParameter (out of range)
    ("checks", "--format", "yaml"),             # bad choice
    ("inventory", "list", "--bogus"),           # nested group
    ("report", "-o", "-"),                      # another module's ClickException (was 1)
    ("serve", "--bogus-option"),                # a lazily registered command
    ("nosuchcommand",),
])
def test_usage_errors_exit_3_not_2(argv):
    res = upk(*argv)
    assert res.returncode == 3, (argv, res.returncode, res.stderr)
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("argv", [
    ("run", "/nonexistent.yml", "--format", "json"),
    ("run", DAILY, "--format", "json", "-i", "/nonexistent.ini"),
    ("run", DAILY, "--format=json", "--forks", "0"),
    ("inventory", "list", "--format", "json", "-i", "/nonexistent.ini"),
    ("inventory", "list", "--format", "ansible-json", "--limit", "~("),
    ("history", "--format", "json", "--metric", "m"),
    ("checks", "--format", "json", "--bogus"),
    ("plugins", "--format", "json", "-x"),
])
def test_json_error_document_on_invalid_input(argv):
    res = upk(*argv)
    assert res.returncode == 3, res.stderr
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 3
    assert isinstance(doc["error"], str) and doc["error"]
    assert res.stderr == ""


def test_tables_off_a_terminal_are_whole_tab_separated_rows(tmp_path):
    long_name = "web-" + "x" * 150 + ".client-with-a-long-domain.example"
    inv = tmp_path / "inv.ini"
    inv.write_text(f"[frontends_of_a_very_long_group_name]\n{long_name} ansible_host=10.0.0.1\n")
    res = upk("inventory", "list", "-i", str(inv))
    assert res.returncode == 0, res.stderr
    header, *rows = res.stdout.splitlines()
    assert header.split("\t") == ["Host", "Address", "Connection", "Groups"]
    assert rows == [f"{long_name}\t10.0.0.1\tssh\tfrontends_of_a_very_long_group_name"]

    res = upk("checks")
    header, *rows = res.stdout.splitlines()
    assert header.split("\t")[0] == "Check"
    names = {r.split("\t")[0] for r in rows}
    assert {"backup.windows_server_backup", "system.uptime"} <= names
    assert all(len(r.split("\t")) == 5 for r in rows)

    res = upk("plugins")
    rows = [r.split("\t") for r in res.stdout.splitlines()]
    assert rows[0] == ["Plugin", "Version", "Source", "Provides", "Status"]
    assert any(r[0] == "backup" and "backup.windows_server_backup" in r[3] for r in rows)


def test_history_table_off_a_terminal(tmp_path):
    book = tmp_path / "pb.yml"
    summary = "a summary long enough that a terminal table would wrap or cut it " * 3
    book.write_text(f"name: long\nchecks:\n  - system.command: {{command: 'echo {summary}'}}\n")
    assert upk("run", str(book)).returncode == 0
    res = upk("history")
    header, row = res.stdout.splitlines()
    assert header == "Time\tStatus\tHost\tCheck\tRun\tSummary"
    cells = row.split("\t")
    assert cells[1:4] == ["OK", "localhost", "system.command"]
    assert cells[5] == summary.strip()
    runs = upk("runs").stdout.splitlines()
    assert runs[1].split("\t")[0] == cells[4]  # the run id, as `upkeeper runs` lists it
