"""upkeeper: proactive IT maintenance for MSP fleets. The public API for plugin authors.

Plugin authors import only from here::

    from upkeeper import hookimpl, Check, Result, Status
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from upkeeper.checks import Action, Check, CheckContext, Params
    from upkeeper.hookspecs import hookimpl
    from upkeeper.models import CommandResult, Host, Result, Status
    from upkeeper.notifier import Notification, Notifier
    from upkeeper.plugins import API_VERSION
    from upkeeper.transport.base import Transport, TransportError

__version__ = "0.1.0"

# Each name is imported on first use (PEP 562): `upkeeper --version` and commands that
# never touch checks start without pydantic, pluggy and the transports.
_HOME = {
    "Action": "upkeeper.checks", "Check": "upkeeper.checks",
    "CheckContext": "upkeeper.checks", "Params": "upkeeper.checks",
    "hookimpl": "upkeeper.hookspecs",
    "CommandResult": "upkeeper.models", "Host": "upkeeper.models",
    "Result": "upkeeper.models", "Status": "upkeeper.models",
    "Notification": "upkeeper.notifier", "Notifier": "upkeeper.notifier",
    "API_VERSION": "upkeeper.plugins",
    "Transport": "upkeeper.transport.base", "TransportError": "upkeeper.transport.base",
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

__all__ = [
    "API_VERSION",
    "Action",
    "Check",
    "CheckContext",
    "CommandResult",
    "Host",
    "Notification",
    "Notifier",
    "Params",
    "Result",
    "Status",
    "Transport",
    "TransportError",
    "hookimpl",
]
