"""Built-in plugin: generic checks (``system.command``, ``system.uptime``)."""

from __future__ import annotations

from typing import Any

from upkeeper import hookimpl
from upkeeper_system.command import CommandCheck
from upkeeper_system.uptime import UptimeCheck


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [CommandCheck, UptimeCheck]
