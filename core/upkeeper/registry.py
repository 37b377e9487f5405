"""The registries of what plugins provide: checks, transports, notifiers, inventory
sources, report sections and template dirs, each object checked as it is registered and
remembered with the plugin that registered it. A check registered as a :class:`CheckRef`
is imported and checked on first use.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from upkeeper.checks import Check
from upkeeper.hookspecs import CheckRef, InventorySource
from upkeeper.models import ReportSection
from upkeeper.notifier import Notifier
from upkeeper.transport.base import Transport

log = logging.getLogger("upkeeper.plugins")


class RegistryError(Exception):
    """A name registered twice, or a malformed plugin object."""


class UnknownNameError(LookupError):
    """A playbook names a check/transport/notifier nobody registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], note: str = "") -> None:
        import difflib  # only for the error message: not on every start-up

        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        known_text = ", ".join(self.known) or "none"
        super().__init__(f"unknown {kind} '{name}'{hint}; known {kind}s: {known_text}{note}")


@dataclass
class Registry:
    """Named plugin objects, each remembering the plugin that registered it."""

    #: Check classes by name; a :class:`CheckRef` until :meth:`check` first resolves it.
    checks: dict[str, type[Check[Any]] | CheckRef] = field(default_factory=dict)
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
    #: Checks whose CheckRef could not be resolved: name -> why (they left ``checks``).
    broken_checks: dict[str, str] = field(default_factory=dict)
    #: Told ``(plugin, check name, message)`` when a CheckRef cannot be resolved.
    on_broken_check: Callable[[str, str, str], None] | None = field(default=None,
                                                                   repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False,
                                  compare=False)

    def missing_check_reason(self, name: str) -> str | None:
        """Why ``name`` may be missing because a plugin broke (None if no plugin did)."""
        if name in self.broken_checks:
            return f"check '{name}' is not available ({self.broken_checks[name]})"
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
        if not isinstance(cls, CheckRef):
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
        """The check class called ``name``, imported now if it was registered as a
        :class:`CheckRef` (safe from several threads).

        :raises UnknownNameError: nobody registered ``name``, or its CheckRef cannot be
            resolved (:meth:`missing_check_reason` says why).
        """
        entry = self.checks.get(name)
        if isinstance(entry, CheckRef):
            with self._lock:
                entry = self.checks.get(name)
                if isinstance(entry, CheckRef):
                    entry = self._resolve(entry)
        if entry is None:
            raise UnknownNameError("check", name, self.checks)
        return entry

    def resolve_checks(self) -> dict[str, type[Check[Any]]]:
        """Every check class by name, each CheckRef resolved (those that cannot be are
        left out and recorded as broken)."""
        found = {}
        for name in sorted(self.checks):
            try:
                found[name] = self.check(name)
            except UnknownNameError:
                continue
        return found

    def _resolve(self, ref: CheckRef) -> type[Check[Any]] | None:
        plugin = self.origin[("check", ref.name)]
        module, _, attr = ref.target.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
            self._need(cls, Check, "Check", plugin, params=True)
            if cls.name != ref.name:
                raise RegistryError(f"{ref.target} is named {cls.name!r}")
        except Exception as exc:  # a broken check must never stop the others
            why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RegistryError) \
                else str(exc)
            message = f"check {ref.name} ({ref.target}) failed to load: {why}"
            del self.checks[ref.name]
            self.broken_checks[ref.name] = f"plugin {plugin}: {message}"
            log.warning("plugin %s: %s", plugin, message)
            if self.on_broken_check is not None:
                self.on_broken_check(plugin, ref.name, message)
            return None
        self.checks[ref.name] = cls
        return cls  # type: ignore[no-any-return]

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
