"""Built-in plugin: generic checks (``system.command``, ``system.uptime``).

The checks are registered by reference: their modules are imported only when a playbook
uses them.
"""

from __future__ import annotations

from upkeeper import CheckRef, hookimpl

UPKEEPER_API = "1.1"


@hookimpl
def upkeeper_register_checks() -> list[CheckRef]:
    return [CheckRef("system.command", "upkeeper_system.command:CommandCheck"),
            CheckRef("system.uptime", "upkeeper_system.uptime:UptimeCheck")]
