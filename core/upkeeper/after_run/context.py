"""What the after-run work needs besides the run record: the live objects of the run.

``upkeeper run`` and ``upkeeper serve`` build one :class:`RunContext` per run and hand
it with the :class:`~upkeeper.models.RunRecord` to :func:`upkeeper.after_run.after_run`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from upkeeper.engine.secrets import Redactor, secrets_in_vars
from upkeeper.models import Host, RunRecord

if TYPE_CHECKING:
    from upkeeper.engine.playbook import Playbook
    from upkeeper.plugins import PluginSystem
    from upkeeper.store.history import History


class HostInventory(Protocol):
    """An inventory as the run saw it (``upkeeper.inventory.loader.Inventory``)."""

    def select(self, pattern: str) -> Sequence[Host]: ...


@dataclass
class RunContext:
    """The playbook, plugins, history and inventory of one run, and how time passes.

    :param redactor: masks secrets of the run (host vars whose names say they are
        secrets are added by :meth:`for_run`); delivery errors go through it.
    :param now: a fixed clock for tests; None means the real time.
    :param sleep: how retries wait (``serve`` passes its stop event's ``wait``, so a
        shutdown does not sit out a backoff).
    """

    playbook: Playbook
    history: History
    plugins: PluginSystem
    inventory: HostInventory | None = None
    redactor: Redactor = field(default_factory=Redactor)
    now: datetime | None = None
    sleep: Callable[[float], object] = time.sleep

    @classmethod
    def for_run(cls, run: RunRecord, playbook: Playbook, history: History,
                plugins: PluginSystem, *, inventory: HostInventory | None = None,
                sleep: Callable[[float], object] = time.sleep) -> RunContext:
        """A context whose redactor knows the secret host vars of every host of ``run``."""
        redactor = Redactor(secrets_in_vars(playbook.vars))
        for host in run.hosts.values():
            redactor.add(secrets_in_vars(host.vars))
        return cls(playbook, history, plugins, inventory, redactor, sleep=sleep)

    def clock(self) -> datetime:
        return self.now or datetime.now(timezone.utc)

    @property
    def base_dir(self) -> Path:
        """Relative ``report:`` paths and template dirs are relative to the playbook."""
        path = self.playbook.path
        return Path(path).resolve().parent if path and not path.startswith("<") else Path.cwd()

    @property
    def template_dirs(self) -> list[str]:
        """Plugins' template directories, searched after the playbook's own."""
        return list(self.plugins.registry.template_dirs)
