"""Runner overhead: the client CPU upkeeper spends per host besides its transport.

Runs the fleet benchmark's playbook (``system.uptime`` and two ``system.command`` checks)
in-process against N hosts on a transport that answers every command at once, with
history on disk and 20 forks, and prints the CPU time per host of each run (the first
run imports the check modules and is not counted). What remains is the runner's own
work: threads, params, secret scanning, result coercion, history writes, hooks.

    python bench/runner_overhead.py [-n 200] [--runs 5]

See bench/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from upkeeper import CommandResult, Transport, hookimpl
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History


class InstantTransport(Transport):
    """Answers ``cat /proc/uptime`` with an uptime and anything else with one line."""

    name = "instant"

    def run(self, command: str | Sequence[str], timeout: float | None = None,
            sudo: bool = False, stdin: str | bytes | None = None,
            env: Mapping[str, str] | None = None) -> CommandResult:
        text = str(command)
        return CommandResult(text, 0, "12345.67 100.00\n" if "uptime" in text else "ok\n")


class InstantPlugin:
    @hookimpl
    def upkeeper_register_transports(self) -> list[type[Transport]]:
        return [InstantTransport]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--hosts", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inventory = {"all": {"hosts": {f"node{i:04d}": {"ansible_connection": "instant"}
                                       for i in range(args.hosts)}}}
        (root / "inventory.yml").write_text(yaml.safe_dump(inventory))
        playbook = {"name": "runner overhead", "hosts": "all", "forks": 20, "checks": [
            {"system.uptime": {"warn_days": 100000}},
            {"name": "disk", "check": "system.command", "params": {"command": "df -P"}},
            {"name": "os", "check": "system.command",
             "params": {"command": "cat /etc/os-release"}}]}
        (root / "playbook.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
        system = get_plugin_manager(extra_plugins=[("instant", InstantPlugin())])
        pb = load_playbook(root / "playbook.yml", system.registry)
        inv = load_inventory([str(root / "inventory.yml")])
        history = History(root / "history.sqlite3")
        per_host = []
        for run in range(args.runs + 1):
            cpu = time.process_time()
            record = run_playbook(pb, inv, system, history)
            spent = time.process_time() - cpu
            assert len(record.results) == 3 * args.hosts, record.results[:3]
            assert all(r.status.value == "OK" for r in record.results)
            if run:
                per_host.append(1000 * spent / args.hosts)
        history.close()
    print(f"{args.hosts} hosts x 3 checks: {statistics.median(per_host):.2f} ms CPU per host "
          f"(median of {args.runs} runs; min {min(per_host):.2f})")


if __name__ == "__main__":
    main()
