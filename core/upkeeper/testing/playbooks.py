"""Run a whole playbook in a test, through the real runner, with the plugins you choose."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from upkeeper.after_run.context import RunContext
from upkeeper.after_run.pipeline import after_run
from upkeeper.engine.playbook import load_playbook
from upkeeper.engine.runner import run_playbook as _run
from upkeeper.models import RunRecord
from upkeeper.plugins import get_plugin_manager
from upkeeper.store.history import History


def run_playbook(playbook: str | Path | Mapping[str, Any], *,
                 plugins: Sequence[object] = (), builtins: bool = False,
                 inventory: str | Path | Mapping[str, Any] | None = None,
                 history: History | None = None, check_mode: bool = False,
                 limit: str | None = None) -> RunRecord:
    """Load and run ``playbook`` and return its run record (``run.results``); then, as
    ``upkeeper run`` does, write its ``report:`` and send its ``notify:`` alerts.

    :param playbook: a path, or the playbook itself as a mapping.
    :param plugins: plugin objects or modules to register (named ``plugin0``...).
    :param builtins: also load the installed plugins (entry points), built-ins included.
    :param inventory: a path or an inventory mapping (Ansible YAML form); default: this
        machine as ``localhost`` on the local transport.
    :param history: where results go; default an in-memory database.
    """
    from upkeeper.inventory.loader import load_inventory, local_inventory

    system = get_plugin_manager(
        extra_plugins=[(f"plugin{n}", p) for n, p in enumerate(plugins)],
        load_entrypoints=builtins)
    with tempfile.TemporaryDirectory(prefix="upkeeper-test-") as tmp:
        if isinstance(playbook, Mapping):
            path = Path(tmp) / "playbook.yml"
            path.write_text(yaml.safe_dump(dict(playbook), sort_keys=False))
            playbook = path
        if isinstance(inventory, Mapping):
            inv_path = Path(tmp) / "inventory.yml"
            inv_path.write_text(yaml.safe_dump(dict(inventory), sort_keys=False))
            inventory = inv_path
        pb = load_playbook(playbook, system.registry)
        inv = load_inventory([str(inventory)]) if inventory is not None else local_inventory()
        hist = history if history is not None else History(":memory:")
        run = _run(pb, inv, system, hist, check_mode=check_mode, limit=limit)
        # as `upkeeper run` does: the playbook's report: and notify: (FakeNotifier hears it)
        after_run(run, RunContext.for_run(run, pb, hist, system, inventory=inv))
        return run
