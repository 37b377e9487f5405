"""Fixtures of the remediation tests: a stand-in systemctl on PATH, an injected clock,
and one helper that runs a playbook with its fix pass like ``upkeeper run`` does."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.remediation.standins import StandInSystemd
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Host, RunRecord
from upkeeper.plugins import PluginSystem, get_plugin_manager
from upkeeper.remediation.engine import FixPass
from upkeeper.remediation.wiring import fix_pass_for
from upkeeper.store.history import History


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandInSystemd:
    fake = StandInSystemd(tmp_path / "systemd")
    monkeypatch.setenv("PATH", f"{fake.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    return fake


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 3, 2, 10, 0,
                                                             tzinfo=timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class ListInventory:
    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = {h.name: h for h in hosts}

    def select(self, pattern: str | None) -> list[Host]:
        return list(self.hosts.values())


def local(name: str = "web1", **vars: Any) -> Host:
    return Host(name, vars={"ansible_connection": "local", "client": "acme", **vars},
                groups=["all"])


@dataclass
class Cycle:
    """Runs one playbook again and again (one process), with its fix pass."""

    pb_path: Path
    history: History
    clock: Clock
    hosts: list[Host]
    plugins: PluginSystem = field(default_factory=get_plugin_manager)
    client_cap: int = 2
    global_cap: int = 10

    def fix_pass(self) -> FixPass:
        pb = load_playbook(self.pb_path, self.plugins.registry)
        found = fix_pass_for(pb, self.plugins, self.history, actor="test",
                             client_cap=self.client_cap, global_cap=self.global_cap,
                             clock=self.clock)
        assert found is not None
        return found

    def run(self, *, check_mode: bool = False) -> RunRecord:
        pb = load_playbook(self.pb_path, self.plugins.registry)
        return run_playbook(pb, ListInventory(self.hosts), self.plugins, self.history,
                            check_mode=check_mode, host_finished=self.fix_pass())


@pytest.fixture
def cycle_for(tmp_path: Path, clock: Clock) -> Iterator[Any]:
    made: list[History] = []

    def make(body: str, hosts: list[Host] | None = None, **kw: Any) -> Cycle:
        path = tmp_path / "pb.yml"
        path.write_text(body)
        history = History(tmp_path / "history.sqlite3")
        made.append(history)
        return Cycle(path, history, clock, hosts or [local()], **kw)

    yield make
    for h in made:
        h.close()
