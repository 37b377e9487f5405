"""The real runner and the real ``patching.apply`` against scripted apt hosts (nothing is
installed anywhere): one set-up for the window-gating tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upkeeper import hookimpl
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.models import Host, RunRecord
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History
from upkeeper.testing import FakeTransport

from .test_apply import AptHost


class Inventory:
    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = {h.name: h for h in hosts}

    def select(self, pattern: str | None) -> list[Host]:
        return list(self.hosts.values())


def run_scripted(tmp_path: Path, playbook: str, hosts: list[Host],
                 **kw: Any) -> tuple[RunRecord, dict[str, AptHost]]:
    """Run ``playbook`` (YAML text) on ``hosts`` (``ansible_connection: scripted``); returns
    the run and each contacted host's scripted apt state."""
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

    pb = tmp_path / "patch.yml"
    pb.write_text(playbook)
    plugins = get_plugin_manager(extra_plugins=[("scripted", Plugin())])
    record = run_playbook(load_playbook(pb, plugins.registry), Inventory(hosts), plugins,
                          History(":memory:"), **kw)
    return record, scripted
