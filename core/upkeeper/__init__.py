"""upkeeper: proactive IT maintenance for MSP fleets. The public API for plugin authors.

Plugin authors import only from here::

    from upkeeper import hookimpl, Check, Result, Status

and from the public submodules listed in ``PUBLIC_MODULES`` (each with its own
``__all__``). Everything else under ``upkeeper`` is internal and may change in any release.
"""

from __future__ import annotations

from upkeeper.checks import Action, Check, CheckContext, Params
from upkeeper.engine.windows import WindowState, window_state
from upkeeper.hookspecs import hookimpl
from upkeeper.models import CommandError, CommandResult, Host, Result, RunRecord, Status
from upkeeper.notifier import Notification, Notifier
from upkeeper.plugins import API_VERSION
from upkeeper.transport.base import Transport, TransportError, command_text, lazy_transport

__version__ = "0.1.0"

#: The public submodules, for plugin authors: PowerShell/Windows helpers, the shared
#: vocabulary of thresholds, durations and sizes, and the test kit.
PUBLIC_MODULES = ("upkeeper.powershell", "upkeeper.measures", "upkeeper.testing")

__all__ = [
    "API_VERSION",
    "Action",
    "Check",
    "CheckContext",
    "CommandError",
    "CommandResult",
    "Host",
    "Notification",
    "Notifier",
    "Params",
    "Result",
    "RunRecord",
    "Status",
    "Transport",
    "TransportError",
    "WindowState",
    "command_text",
    "hookimpl",
    "lazy_transport",
    "window_state",
]
