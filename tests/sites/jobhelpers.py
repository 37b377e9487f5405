"""Helpers for the job-flow tests: a worker on its own event loop thread, a worker as a
real process, and a small inventory/playbook of local hosts on a site."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from upkeeper.engine.playbook import load_playbook
from upkeeper.inventory.loader import load_inventory
from upkeeper.plugins import PluginSystem, get_plugin_manager
from upkeeper.sites.execute import WorkerSecrets
from upkeeper.sites.worker import Worker, WorkerOptions


def wait_for(cond: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class WorkerThread:
    """A :class:`Worker` running on its own event loop in a thread."""

    def __init__(self, site: str, url: str, state_dir: Path, *,
                 plugins: PluginSystem | None = None, secrets: WorkerSecrets | None = None,
                 options: WorkerOptions | None = None, name: str | None = None) -> None:
        self.worker = Worker(site, url, plugins or get_plugin_manager(), state_dir,
                             secrets=secrets, options=options, name=name)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def go() -> None:
            self.stop_event = asyncio.Event()
            await self.worker.run(self.stop_event)

        self.task = self.loop.create_task(go())
        with contextlib.suppress(RuntimeError):  # lose() stopped the loop under the worker
            self.loop.run_until_complete(self.task)

    def lose(self) -> None:
        """The worker vanishes as a killed process would: its loop stops mid-job, nothing
        more is sent (no acks, no lease renewals, no results) until :meth:`stop`."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        if not self.thread.is_alive() and getattr(self, "task", None) is not None \
                and not self.task.done():
            # A lost worker: let it wind down (so nothing is left pending at exit).
            assert self.stop_event is not None
            self.stop_event.set()
            self.thread = threading.Thread(
                target=self.loop.run_until_complete, args=(self.task,), daemon=True)
            self.thread.start()
            self.thread.join(30)
            return
        if not self.thread.is_alive():
            return
        while self.stop_event is None:
            time.sleep(0.01)
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(30)


def worker_process(site: str, url: str, state_dir: Path, *extra: str,
                   env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``upkeeper worker`` as a real process (its log in ``state_dir/worker.log``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = open(state_dir / "worker.log", "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, "-m", "upkeeper", "worker", "--site", site, "--hub", url,
         "--state-dir", str(state_dir), *extra],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def site_setup(tmp: Path, hosts: dict[str, dict[str, Any]], command: str,
               name: str = "site jobs") -> tuple[Any, Any, PluginSystem]:
    """(playbook, inventory, plugins) for local-connection ``hosts`` running
    ``system.command`` ``command``."""
    inv = tmp / "inventory.yml"
    inv.write_text(yaml.safe_dump({"all": {"hosts": {
        h: {"ansible_connection": "local", **v} for h, v in hosts.items()}}}))
    pb = tmp / "playbook.yml"
    pb.write_text(yaml.safe_dump({"name": name, "hosts": "all", "checks": [
        {"check": "system.command", "params": {"command": command}}]}))
    plugins = get_plugin_manager()
    return load_playbook(pb, plugins.registry), load_inventory([str(inv)]), plugins
