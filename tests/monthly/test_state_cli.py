"""``upkeeper state`` through the real CLI on a real database, and the runner recording
an unreachable host so that state shows it as one line."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.core.helpers import DownTransport, ListInventory, TestPlugin
from tests.core.servehelp import Serve, serving, write_playbook
from tests.monthly.helpers import clients, record
from upkeeper import TransportError, hookimpl
from upkeeper.after_run.alerts import host_results
from upkeeper.cli.main import main
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Host, Status
from upkeeper.monthly.state import current_state
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History

NOW = datetime.now(timezone.utc)
__all__ = ["serving"]  # a fixture, used by name


def _fleet(state_dir: Path) -> None:
    h = History(state_dir / "history.sqlite3")
    clients(h, {"web1": "acme", "web2": "acme", "db1": "acme", "mail": "globex"})
    record(h, NOW - timedelta(hours=2),
           [("web1", "disk.usage", Status.OK), ("web1", "backup.restic", Status.OK),
            ("web2", "disk.usage", Status.OK), ("db1", "disk.usage", Status.WARN),
            ("mail", "disk.usage", Status.OK), ("mail", "patching.pending", Status.OK)])
    record(h, NOW - timedelta(hours=1),
           [("web1", "disk.usage", Status.UNKNOWN), ("web1", "backup.restic", Status.UNKNOWN)],
           meta={"unreachable": {"web1": "connection refused"}})
    h.close()


def test_state_problems_grouped_with_one_line_per_down_host(state_dir: Path) -> None:
    _fleet(state_dir)
    res = CliRunner().invoke(main, ["state", "--problems"])
    assert res.exit_code == 3, res.output
    lines = [line.split("\t") for line in res.stdout.splitlines()]
    assert lines[0] == ["Client", "Host", "Check", "Status", "Age", "Summary"]
    assert [(c, h, s) for c, h, _, s, *_ in lines[1:]] == [
        ("acme", "web1", "DOWN"), ("acme", "db1", "WARN")]
    assert lines[1][5] == "unreachable: connection refused"
    assert "1 host(s) down" in res.stderr


def test_state_client_filter_json_and_exit_code(state_dir: Path) -> None:
    _fleet(state_dir)
    res = CliRunner().invoke(main, ["state", "--client", "globex", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [c["client"] for c in doc["clients"]] == ["globex"]
    assert doc["counts"]["OK"] == 2
    res = CliRunner().invoke(main, ["state", "--client", "nobody"])
    assert res.exit_code == 3 and "no results for client 'nobody'" in res.stderr


def test_runner_records_unreachable_host_for_state(tmp_path: Path) -> None:
    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[("t", TestPlugin())])
    book = tmp_path / "pb.yml"
    book.write_text("name: down\nchecks:\n  - {check: test.echo, name: first}\n"
                    "  - {check: test.echo, name: second}\n")
    pb = load_playbook(book, plugins.registry)
    history = History(tmp_path / "h.sqlite3")
    host = Host("gone", {"ansible_connection": "down", "ansible_host": "192.0.2.7"})
    run_playbook(pb, ListInventory([host]), plugins, history)
    gone = current_state(history).host("gone")
    assert gone is not None and gone.down
    assert gone.down_reason is not None and "connection refused" in gone.down_reason


@pytest.mark.slow
def test_serve_records_the_schedule_period_that_state_judges_by(
        tmp_path: Path, serving: Callable[..., Serve]) -> None:
    """A real ``serve`` run: its run meta carries the playbook's interval, so a result is
    stale after 1.5 intervals with no inventory or playbook at hand."""
    pbs = tmp_path / "pbs"
    write_playbook(pbs, "quick", every="4 seconds")
    s = serving(pbs)
    s.until(lambda slots: any(r["state"] == "done" for r in slots))
    s.signal(signal.SIGTERM)
    assert s.wait() == 0
    history = History(s.state / "history.sqlite3", create=False)
    (check,) = current_state(history).checks
    assert check.playbook == "quick" and check.allowed_age == timedelta(seconds=6)
    assert not current_state(history, now=check.ts + timedelta(seconds=5)).checks[0].stale
    assert current_state(history, now=check.ts + timedelta(seconds=7)).checks[0].stale
    history.close()


class _SshLikeDown(DownTransport):
    """Says "unreachable:" itself, as the SSH transport's errors do."""

    name = "down-ssh"

    def run(self, command: Any, timeout: float | None = None, sudo: bool = False,
            stdin: Any = None, env: Any = None) -> Any:
        raise TransportError(f"unreachable: cannot connect to {self.host.address} "
                             "(192.0.2.7:22) after 1 attempts: Connection refused")


class _SshLikePlugin:
    @hookimpl
    def upkeeper_register_transports(self) -> list[type[Any]]:
        return [_SshLikeDown]


def test_down_reason_says_unreachable_once(tmp_path: Path, state_dir: Path) -> None:
    plugins = get_plugin_manager(load_entrypoints=False, extra_plugins=[
        ("t", TestPlugin()), ("s", _SshLikePlugin())])
    book = tmp_path / "pb.yml"
    book.write_text("name: down\nchecks:\n  - {check: test.echo, name: first}\n")
    pb = load_playbook(book, plugins.registry)
    history = History(state_dir / "history.sqlite3")
    host = Host("gone", {"ansible_connection": "down-ssh", "ansible_host": "192.0.2.7"})
    run = run_playbook(pb, ListInventory([host]), plugins, history)
    history.close()
    _checks, hosts = host_results(run)
    assert [r.summary.count("unreachable") for r in hosts] == [1]
    res = CliRunner().invoke(main, ["state", "--problems"])
    row = res.stdout.splitlines()[1].split("\t")
    assert row[3] == "DOWN" and row[5].startswith("unreachable: cannot connect")
    assert row[5].count("unreachable") == 1


def test_state_errors_are_json_documents_with_format_json(state_dir: Path) -> None:
    res = CliRunner().invoke(main, ["state", "--format", "json"])
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 3 and "no history" in doc["error"]
    _fleet(state_dir)
    res = CliRunner().invoke(main, ["state", "--host", "nosuch", "--format", "json"])
    assert res.exit_code == 3
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == 3 and "no results for host 'nosuch'" in doc["error"]
    res = CliRunner().invoke(main, ["state", "--host", "nosuch"])
    assert res.exit_code == 3 and res.stdout == ""
    assert "no results for host 'nosuch'" in res.stderr


def test_state_format_table_like_every_other_command(state_dir: Path) -> None:
    _fleet(state_dir)
    res = CliRunner().invoke(main, ["state", "--format", "table"])
    assert res.exit_code == 3, res.output
    assert res.stdout.splitlines()[0].split("\t")[0] == "Client"
