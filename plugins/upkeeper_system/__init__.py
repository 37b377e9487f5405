"""Built-in plugin: generic checks (``system.command``, ``system.uptime``,
``system.service``) and the ``system.service.restart`` fix.

The checks are registered by reference: their modules are imported only when a playbook
uses them; the fix module is imported when a playbook has fixes.
"""

from __future__ import annotations

from typing import Any

from upkeeper import CheckRef, hookimpl

UPKEEPER_API = "1.2"


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("system.command", "upkeeper_system.command:CommandCheck"),
            CheckRef("system.uptime", "upkeeper_system.uptime:UptimeCheck"),
            CheckRef("system.service", "upkeeper_system.service:ServiceCheck")]


@hookimpl
def upkeeper_register_fixes() -> list[Any]:
    from upkeeper_system.service import ServiceRestart

    return [ServiceRestart]
