"""The registries of what plugins provide: checks, transports, notifiers, inventory
sources, report sections and template dirs, each object checked as it is registered and
remembered with the plugin that registered it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from upkeeper.checks import Check
from upkeeper.hookspecs import InventorySource
from upkeeper.models import ReportSection
from upkeeper.notifier import Notifier
from upkeeper.transport.base import Transport


class RegistryError(Exception):
    """A name registered twice, or a malformed plugin object."""


class UnknownNameError(LookupError):
    """A playbook names a check/transport/notifier nobody registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], note: str = "") -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        known_text = ", ".join(self.known) or "none"
        super().__init__(f"unknown {kind} '{name}'{hint}; known {kind}s: {known_text}{note}")


@dataclass
class Registry:
    """Named plugin objects, each remembering the plugin that registered it."""

    checks: dict[str, type[Check[Any]]] = field(default_factory=dict)
    transports: dict[str, type[Transport]] = field(default_factory=dict)
    notifiers: dict[str, type[Notifier]] = field(default_factory=dict)
    inventory_sources: list[InventorySource] = field(default_factory=list)
    template_dirs: list[str] = field(default_factory=list)
    report_sections: list[ReportSection] = field(default_factory=list)
    origin: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Plugins that failed to load: name -> first error. Checks they would have provided
    #: become UNKNOWN results instead of invalidating whole playbooks.
    failed_plugins: dict[str, str] = field(default_factory=dict)
    #: Plugins blocked by ``-p no:NAME`` / UPKEEPER_DISABLE_PLUGINS (named in hints).
    disabled_plugins: list[str] = field(default_factory=list)

    def missing_check_reason(self, name: str) -> str | None:
        """Why ``name`` may be missing because a plugin broke (None if no plugin did)."""
        if not self.failed_plugins:
            return None
        namespace = name.split(".", 1)[0]
        if any(n.split(".", 1)[0] == namespace for n in self.checks):
            return None
        broken = "; ".join(f"plugin {p}: {e}" for p, e in sorted(self.failed_plugins.items()))
        return f"check '{name}' is not available ({broken})"

    def _add(self, kind: str, table: dict[str, Any], name: str, obj: Any, plugin: str) -> None:
        if not name or not isinstance(name, str):
            raise RegistryError(f"{kind} {obj!r} from plugin '{plugin}' has no name")
        if name in table:
            first = self.origin[(kind, name)]
            raise RegistryError(
                f"{kind} '{name}' is registered twice: by plugin '{first}' and by plugin '{plugin}'"
            )
        table[name] = obj
        self.origin[(kind, name)] = plugin

    @staticmethod
    def _need(cls: Any, base: type[Any], kind: str, plugin: str, params: bool) -> None:
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistryError(f"plugin '{plugin}' registered {cls!r}, which is not a {kind}")
        model = getattr(cls, "Params", None)
        if params and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise RegistryError(f"{kind.lower()} '{getattr(cls, 'name', cls)}' from plugin "
                                f"'{plugin}': Params must be a pydantic model")

    def add_check(self, cls: Any, plugin: str) -> None:
        self._need(cls, Check, "Check", plugin, params=True)
        self._add("check", self.checks, cls.name, cls, plugin)

    def add_transport(self, cls: Any, plugin: str) -> None:
        self._need(cls, Transport, "Transport", plugin, params=False)
        self._add("transport", self.transports, cls.name, cls, plugin)

    def add_notifier(self, cls: Any, plugin: str) -> None:
        self._need(cls, Notifier, "Notifier", plugin, params=True)
        self._add("notifier", self.notifiers, cls.name, cls, plugin)

    def add_inventory_source(self, source: Any, plugin: str) -> None:
        if not (isinstance(getattr(source, "name", None), str)
                and all(callable(getattr(source, m, None)) for m in ("matches", "load"))):
            raise RegistryError(f"plugin '{plugin}' registered {source!r}, which is not an "
                                "inventory source (name, matches(source), load(source))")
        self.inventory_sources.append(source)

    def add_report_section(self, section: Any, plugin: str) -> None:
        if not isinstance(section, ReportSection):
            raise RegistryError(f"plugin '{plugin}' registered {section!r}, which is not a "
                                "ReportSection")
        self._add("report section", {s.key: s for s in self.report_sections}, section.key,
                  section, plugin)  # refuses a key registered twice, naming both plugins
        self.report_sections.append(section)

    def check(self, name: str) -> type[Check[Any]]:
        try:
            return self.checks[name]
        except KeyError:
            raise UnknownNameError("check", name, self.checks) from None

    def transport(self, name: str) -> type[Transport]:
        try:
            return self.transports[name]
        except KeyError:
            raise UnknownNameError("transport", name, self.transports) from None

    def notifier(self, name: str) -> type[Notifier]:
        try:
            return self.notifiers[name]
        except KeyError:
            off = ", ".join(sorted({*self.disabled_plugins, *self.failed_plugins}))
            note = f"; plugins not loaded (disabled or broken): {off}" if off else ""
            raise UnknownNameError("notifier", name, self.notifiers, note) from None
