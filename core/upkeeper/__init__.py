"""upkeeper: proactive IT maintenance for MSP fleets. The public API for plugin authors.

Plugin authors import only from here::

    from upkeeper import hookimpl, Check, Result, Status
"""

from __future__ import annotations

from upkeeper.checks import Action, Check, CheckContext, Params
from upkeeper.hookspecs import hookimpl
from upkeeper.models import CommandResult, Host, Result, Status
from upkeeper.notifier import Notification, Notifier
from upkeeper.plugins import API_VERSION
from upkeeper.transport.base import Transport, TransportError
from upkeeper.transport.env import EnvName

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Action",
    "Check",
    "CheckContext",
    "CommandResult",
    "EnvName",
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
