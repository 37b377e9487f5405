"""upkeeper: proactive IT maintenance for MSP fleets. The public API for plugin authors.

Plugin authors import only from here::

    from upkeeper import hookimpl, Check, Result, Status

and from the public submodules listed in ``PUBLIC_MODULES`` (each with its own
``__all__``). Everything else under ``upkeeper`` is internal and may change in any release.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upkeeper.asbuilt.categories import DocCategory
    from upkeeper.checks import Action, Check, CheckContext, Params
    from upkeeper.engine.windows import WindowState, window_state
    from upkeeper.hookspecs import CheckRef, InventorySource, hookimpl
    from upkeeper.inventory.patterns import InventoryError
    from upkeeper.models import (
        CommandError,
        CommandResult,
        Host,
        ReportSection,
        Result,
        RunRecord,
        Status,
    )
    from upkeeper.notifier import Notification, Notifier
    from upkeeper.plugins import API_VERSION
    from upkeeper.remediation.fix import (
        Fix,
        FixContext,
        FixRefused,
        Plan,
        Signature,
        signature,
    )
    from upkeeper.transport.base import (
        CappedOutput,
        Transport,
        TransportError,
        command_text,
        lazy_transport,
    )
    from upkeeper.transport.env import EnvName, check_env, env_block, read_env_sh

__version__ = "0.1.0"


def load_hosts(sources: Sequence[str], pattern: str | None = None) -> list[Host]:
    """The hosts of Ansible-compatible inventory ``sources`` matching a host ``pattern``.

    For plugin commands that act on an inventory (``upkeeper hostkeys scan -i``). Hosts
    carry their merged vars (``host.vars``), ``host.address``, ``host.port`` and
    ``host.connection``; inventory warnings are logged.

    :raises InventoryError: a source cannot be read, or the pattern is malformed; the
        message names the file and line.
    """
    from upkeeper.inventory.loader import load_inventory
    from upkeeper.inventory.patterns import InventoryError
    from upkeeper.yamlsource import SourceError

    try:
        inventory = load_inventory(list(sources))
        hosts = list(inventory.select(pattern))
    except InventoryError:
        raise
    except SourceError as exc:
        raise InventoryError(str(exc)) from None
    for warning in getattr(inventory, "warnings", ()):
        logging.getLogger("upkeeper.inventory").warning("%s", warning)
    return hosts

#: The public submodules, for plugin authors: PowerShell/Windows helpers, the shared
#: vocabulary of thresholds, durations and sizes, checks for values put on command
#: lines, and the test kit.
PUBLIC_MODULES = ("upkeeper.powershell", "upkeeper.measures", "upkeeper.argv",
                  "upkeeper.testing")

__all__ = [
    "API_VERSION",
    "Action",
    "CappedOutput",
    "Check",
    "CheckContext",
    "CheckRef",
    "CommandError",
    "CommandResult",
    "DocCategory",
    "EnvName",
    "Fix",
    "FixContext",
    "FixRefused",
    "Host",
    "InventoryError",
    "InventorySource",
    "Notification",
    "Notifier",
    "Params",
    "Plan",
    "ReportSection",
    "Result",
    "RunRecord",
    "Signature",
    "Status",
    "Transport",
    "TransportError",
    "WindowState",
    "check_env",
    "command_text",
    "env_block",
    "hookimpl",
    "lazy_transport",
    "load_hosts",
    "read_env_sh",
    "signature",
    "window_state",
]

# Each name is imported on first use (PEP 562): `upkeeper --version` and commands that
# never touch checks start without pydantic, pluggy and the transports.
_HOME = {
    "DocCategory": "upkeeper.asbuilt.categories",
    "Action": "upkeeper.checks", "Check": "upkeeper.checks",
    "CheckContext": "upkeeper.checks", "Params": "upkeeper.checks",
    "WindowState": "upkeeper.engine.windows", "window_state": "upkeeper.engine.windows",
    "hookimpl": "upkeeper.hookspecs", "InventorySource": "upkeeper.hookspecs",
    "CheckRef": "upkeeper.hookspecs",
    "InventoryError": "upkeeper.inventory.patterns", "ReportSection": "upkeeper.models",
    "CommandError": "upkeeper.models", "CommandResult": "upkeeper.models",
    "Host": "upkeeper.models", "Result": "upkeeper.models", "RunRecord": "upkeeper.models",
    "Status": "upkeeper.models",
    "Notification": "upkeeper.notifier", "Notifier": "upkeeper.notifier",
    "API_VERSION": "upkeeper.plugins",
    "Fix": "upkeeper.remediation.fix", "FixContext": "upkeeper.remediation.fix",
    "FixRefused": "upkeeper.remediation.fix", "Plan": "upkeeper.remediation.fix",
    "Signature": "upkeeper.remediation.fix", "signature": "upkeeper.remediation.fix",
    "CappedOutput": "upkeeper.transport.base", "Transport": "upkeeper.transport.base",
    "TransportError": "upkeeper.transport.base",
    "command_text": "upkeeper.transport.base", "lazy_transport": "upkeeper.transport.base",
    "EnvName": "upkeeper.transport.env", "check_env": "upkeeper.transport.env",
    "env_block": "upkeeper.transport.env", "read_env_sh": "upkeeper.transport.env",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'upkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
