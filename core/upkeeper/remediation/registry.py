"""The fixes plugins register (``upkeeper_register_fixes``), by name."""

from __future__ import annotations

import logging
from typing import Any

from upkeeper.plugins import PluginSystem
from upkeeper.remediation.fix import Fix

__all__ = ["FixRegistry"]

log = logging.getLogger("upkeeper.remediation")


class FixRegistry:
    """Fix classes by name. A name registered twice is refused, naming both plugins."""

    def __init__(self) -> None:
        self._fixes: dict[str, type[Fix[Any]]] = {}
        self._owner: dict[str, str] = {}
        self.problems: list[str] = []

    def add(self, cls: Any, plugin: str = "<test>") -> None:
        if not (isinstance(cls, type) and issubclass(cls, Fix)) or not cls.name:
            self.problems.append(f"plugin {plugin}: {cls!r} is not a named upkeeper.Fix"
                                 " subclass")
            return
        if not cls.handles:
            self.problems.append(f"plugin {plugin}: fix {cls.name} handles no signature")
            return
        if cls.name in self._fixes:
            self.problems.append(f"fix {cls.name} of plugin {plugin} is already registered"
                                 f" by plugin {self._owner[cls.name]}")
            return
        self._fixes[cls.name], self._owner[cls.name] = cls, plugin

    def get(self, name: str) -> type[Fix[Any]] | None:
        return self._fixes.get(name)

    def names(self) -> list[str]:
        return sorted(self._fixes)

    def owner(self, name: str) -> str:
        return self._owner.get(name, "")

    @classmethod
    def from_plugins(cls, plugins: PluginSystem) -> FixRegistry:
        reg = cls()
        for plugin, values in plugins.call("upkeeper_register_fixes"):
            for value in values or []:
                reg.add(value, plugin)
        for problem in reg.problems:
            log.error("%s", problem)
        return reg
