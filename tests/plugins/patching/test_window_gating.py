"""The real runner gates ``patching.apply`` by each host's maintenance window (scripted hosts)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from upkeeper import hookimpl
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Host, Status
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport

from .test_apply import AptHost

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Inventory:
    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = {h.name: h for h in hosts}

    def select(self, pattern: str | None) -> list[Host]:
        return list(self.hosts.values())


@pytest.mark.slow
def test_apply_runs_inside_its_window_and_is_skipped_outside(tmp_path: Path):
    scripted: dict[str, AptHost] = {}

    class ScriptedTransport(FakeTransport):
        name = "scripted"

        def __init__(self, host: Host) -> None:
            handler = scripted.setdefault(host.name, AptHost(reboot_flag=False))
            super().__init__(host, handler=handler)

    class Plugin:
        @hookimpl
        def upkeeper_register_transports(self) -> list[type[Any]]:
            return [ScriptedTransport]

    # The runner reads the real clock: windows are built around it (UTC).
    now = datetime.now(timezone.utc)
    today, tomorrow, later = (DAYS[(now + timedelta(days=d)).weekday()] for d in (0, 1, 2))
    zone = {"timezone": "UTC", "ansible_connection": "scripted"}
    inside = Host("inside", groups=["all"], vars={
        **zone, "maintenance_windows": [f"{today} 00:00-{tomorrow} 23:59"]})
    outside = Host("outside", vars={**zone, "maintenance_windows": [f"{later} 00:00-01:00"]},
                   groups=["all"])
    pb = tmp_path / "patch.yml"
    pb.write_text("name: patch\nhosts: all\nchecks:\n"
                  "  - patching.apply:\n      reboot: never\n")
    plugins = get_plugin_manager(extra_plugins=[("scripted", Plugin())])
    run = run_playbook(load_playbook(pb, plugins.registry), Inventory([inside, outside]),
                       plugins, History(":memory:"))
    by_host = {r.host: r for r in run.results}
    assert by_host["inside"].status is Status.OK, by_host["inside"].summary
    assert by_host["inside"].changed and scripted["inside"].installed
    assert by_host["outside"].status is Status.SKIPPED
    assert "outside maintenance window" in by_host["outside"].summary
    assert "outside" not in scripted or not scripted["outside"].installed
