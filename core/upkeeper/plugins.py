"""Plugin loading and the registries of what plugins provide (checks, transports ...).

Plugins are found through the ``upkeeper`` entry-point group, loaded one at a time: a
plugin that fails to import, targets another API major version, has a malformed hook,
or whose register hook raises is recorded on its :class:`PluginInfo` and skipped.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pluggy

from upkeeper import entrypoints, hookspecs
from upkeeper.bounded import run_bounded

# Re-exported: the registry types have always been importable from here.
from upkeeper.registry import Registry as Registry
from upkeeper.registry import RegistryError as RegistryError
from upkeeper.registry import UnknownNameError as UnknownNameError
from upkeeper.transport.base import Transport, lazy_transport

log = logging.getLogger("upkeeper.plugins")

#: Major.minor of the plugin API. A plugin (module or object) may declare
#: ``UPKEEPER_API = "1.1"``: another major version, or a newer minor than this one, is
#: refused with a message; an older minor of the same major loads.
API_VERSION = "1.2"
#: Errors kept per plugin; later ones are counted, not stored (a long-running ``serve``
#: with a plugin failing every run must not grow without bound).
MAX_PLUGIN_ERRORS = 20
ENTRY_POINT_GROUP = "upkeeper"
DISABLE_ENV = "UPKEEPER_DISABLE_PLUGINS"
TRACE_ENV = "UPKEEPER_TRACE_PLUGINS"


@dataclass
class PluginInfo:
    """What ``upkeeper plugins`` shows for one plugin."""

    name: str
    module: str = ""
    distribution: str = ""
    version: str = ""
    source: str = "third-party"
    loaded: bool = False
    disabled: bool = False
    errors: list[str] = field(default_factory=list)
    #: Errors past MAX_PLUGIN_ERRORS, counted only.
    errors_dropped: int = 0
    #: Deprecation warnings raised while registering (pluggy's ``warn_on_impl``).
    warnings: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    transports: list[str] = field(default_factory=list)
    notifiers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def add_error(self, message: str) -> None:
        """Record an error, keeping at most MAX_PLUGIN_ERRORS of them."""
        if len(self.errors) < MAX_PLUGIN_ERRORS:
            self.errors.append(message)
        else:
            self.errors_dropped += 1


class CorePlugin:
    """The core's own contributions: the local transport."""

    @hookspecs.hookimpl
    def upkeeper_register_transports(self) -> list[type[Transport]]:
        # subprocess and friends only when a host is this machine.
        return [lazy_transport("local", "upkeeper.transport.local:LocalTransport")]


@dataclass
class PluginSystem:
    """A plugin manager with the registry built from it and a report of every plugin."""

    pm: pluggy.PluginManager
    registry: Registry
    plugins: list[PluginInfo]

    def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call ``hook`` on every plugin, isolating failures (logged, never raised)."""
        if not self._implemented(hook):
            return []
        return call_each(self.pm, hook, self._info_by_name(), **kwargs)

    def call_bounded(self, hook: str, limit: float, problems: list[str],
                     skip: set[str] | None = None, **kwargs: Any) -> list[Any]:
        """:meth:`call` giving each implementation ``limit`` seconds: one that is late is
        abandoned and its plugin added to ``skip`` (not called again); every failure,
        ``BaseException`` included, is appended to ``problems``."""
        if not self._implemented(hook):
            return []  # upkeeper_result is called for every result: most runs have none
        return call_each(self.pm, hook, self._info_by_name(), hook_limit=limit,
                         problems=problems, skip=skip, **kwargs)

    def report_problem(self, plugin: str, message: str, level: int = logging.ERROR) -> None:
        """A bad registration of ``plugin``: logged and kept on its report
        (``upkeeper plugins``)."""
        log.log(level, "plugin %s: %s", plugin, message)
        info = self._info_by_name().get(plugin)
        if info is not None:
            info.add_error(message)

    def _implemented(self, hook: str) -> bool:
        return bool(getattr(self.pm.hook, hook).get_hookimpls())

    def _info_by_name(self) -> dict[str, PluginInfo]:
        return {p.name: p for p in self.plugins}


def _disabled_names(extra: Sequence[str] = ()) -> set[str]:
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    return names | set(extra)


def _version_tuple(text: str) -> tuple[int, int] | None:
    parts = text.strip().split(".")
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def api_compatible(plugin: object) -> str | None:
    """Why ``plugin`` (a module or any object) cannot load on this API, or None.

    A plugin declares the API it was built for as ``UPKEEPER_API = "MAJOR.MINOR"``. The
    same major with an older or equal minor loads; another major, a newer minor (it may
    call hooks this upkeeper lacks) or an unreadable value is refused.
    """
    declared = getattr(plugin, "UPKEEPER_API", None)
    if declared is None:
        return None
    wanted, provided = _version_tuple(str(declared)), _version_tuple(API_VERSION)
    assert provided is not None
    if wanted is None:
        return f"declares UPKEEPER_API = {declared!r}, which is not 'MAJOR.MINOR': skipped"
    if wanted[0] != provided[0] or wanted[1] > provided[1]:
        return (f"built for upkeeper plugin API {declared}, this upkeeper provides "
                f"{API_VERSION}: skipped")
    return None


def get_plugin_manager(
    extra_plugins: Sequence[tuple[str, object]] = (),
    load_entrypoints: bool = True,
    disabled: Sequence[str] = (),
) -> PluginSystem:
    """Build a fresh plugin manager and registry (no global state).

    :param extra_plugins: ``(name, plugin object or module)`` pairs registered after the
        entry points (used by tests and embedding applications).
    :param load_entrypoints: load the ``upkeeper`` entry-point group.
    :param disabled: plugin names to block, on top of ``UPKEEPER_DISABLE_PLUGINS``.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    blocked = _disabled_names(disabled)
    core = PluginInfo(name="core", module="upkeeper.plugins", distribution="upkeeper",
                      source="built-in")
    _register(pm, core, CorePlugin())
    infos.append(core)
    if load_entrypoints:
        for ep in sorted(entrypoints.entry_points(ENTRY_POINT_GROUP), key=lambda e: e.name):
            infos.append(_load_entry_point(pm, ep, blocked))
    for name, obj in extra_plugins:
        info = PluginInfo(name=name, module=getattr(obj, "__name__", type(obj).__name__))
        if name in blocked:
            info.disabled = True
        else:
            _register(pm, info, obj)
        infos.append(info)
    registry = build_registry(pm, infos)
    registry.failed_plugins = {i.name: i.errors[0] for i in infos if i.errors and not i.loaded}
    registry.disabled_plugins = [i.name for i in infos if i.disabled]
    return PluginSystem(pm, registry, infos)


def _load_entry_point(pm: pluggy.PluginManager, ep: entrypoints.EntryPoint,
                      blocked: set[str]) -> PluginInfo:
    dist_name, version = entrypoints.distribution(ep)  # METADATA's headers only
    info = PluginInfo(
        name=ep.name,
        module=ep.value,
        distribution=dist_name,
        version=version,
        source="built-in" if dist_name == "upkeeper" else "third-party",
    )
    if ep.name in blocked:
        info.disabled = True
        return info
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must never stop the others
        info.add_error(f"import failed: {type(exc).__name__}: {exc}")
        log.warning("plugin %s failed to import: %s", ep.name, exc)
        return info
    _register(pm, info, obj)
    return info


def _register(pm: pluggy.PluginManager, info: PluginInfo, obj: object) -> None:
    """Register one plugin (module or object), or record on ``info`` why not."""
    problem = api_compatible(obj)
    if problem:
        info.add_error(problem)
        log.warning("plugin %s %s", info.name, problem)
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pm.register(obj, name=info.name)
            pm.check_pending()
            wrappers = sorted(impl.function.__name__
                              for caller in pm.get_hookcallers(obj) or []
                              for impl in caller.get_hookimpls()
                              if impl.plugin is obj and (impl.wrapper or impl.hookwrapper))
            if wrappers:
                raise RegistryError(
                    f"hook wrappers are not supported ({', '.join(wrappers)}): upkeeper calls "
                    "each implementation on its own so one plugin's failure cannot stop the "
                    "others; implement the hook without wrapper=True/hookwrapper=True")
    except Exception as exc:
        if pm.is_registered(obj):
            pm.unregister(obj)
        info.add_error(f"invalid hooks: {exc}")
        log.warning("plugin %s skipped: %s", info.name, exc)
        return
    for w in caught:
        if issubclass(w.category, DeprecationWarning):
            info.warnings.append(str(w.message))
            log.warning("plugin %s: %s", info.name, w.message)
    info.loaded = True


def call_each(pm: pluggy.PluginManager, hook: str, infos: dict[str, PluginInfo], *,
              hook_limit: float | None = None, problems: list[str] | None = None,
              skip: set[str] | None = None, **kwargs: Any) -> list[Any]:
    """Call each implementation of ``hook`` on its own so one failure cannot stop the rest.

    Implementations run in pluggy's order (``tryfirst`` first, then the most recently
    registered first, ``trylast`` last). Returns ``(plugin name, value)`` pairs for the
    implementations that succeeded. With ``hook_limit``, see
    :meth:`PluginSystem.call_bounded`.
    """
    out: list[Any] = []
    caller = getattr(pm.hook, hook)
    trace = bool(os.environ.get(TRACE_ENV))
    # get_hookimpls() lists implementations in registration order with tryfirst last;
    # pluggy's own _multicall walks that list backwards.
    for impl in reversed(caller.get_hookimpls()):
        pname = pm.get_name(impl.plugin) or repr(impl.plugin)
        if skip is not None and pname in skip:
            continue
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        if trace:
            shown = ", ".join(f"{k}={type(v).__name__}" for k, v in args.items())
            sys.stderr.write(f"[plugins] {pname}: {hook}({shown})\n")
        msg, value = None, None
        if hook_limit is None:
            try:
                value = impl.function(**args)
            except Exception as exc:  # hooks are third-party code; report and go on
                msg = f"hook {hook} raised {type(exc).__name__}: {exc}"
        else:
            done = run_bounded(functools.partial(impl.function, **args), hook_limit,
                               name=f"upkeeper-hook-{pname}")
            value, error = done.value, done.error
            if not done.finished:
                msg = f"hook {hook} did not return within {hook_limit:g}s: abandoned"
                (skip if skip is not None else set()).add(pname)
            elif error is not None:
                msg = f"hook {hook} raised {type(error).__name__}: {error}"
        if msg is not None:
            log.error("plugin %s: %s", pname, msg)
            if pname in infos:
                infos[pname].add_error(msg)
            if problems is not None:
                problems.append(f"plugin {pname}: {msg}")
            continue
        out.append((pname, value))
    return out


def build_registry(pm: pluggy.PluginManager, infos: list[PluginInfo]) -> Registry:
    """Collect every plugin's registrations; bad entries are reported on the plugin."""
    reg = Registry()
    by_name = {i.name: i for i in infos}
    order = {i.name: n for n, i in enumerate(infos)}

    def broken_check(plugin: str, name: str, message: str) -> None:
        info = by_name.get(plugin)
        if info is not None:
            info.add_error(message)
            if name in info.checks:
                info.checks.remove(name)

    reg.on_broken_check = broken_check

    def collect(hook: str, add: Any, listing: str | None) -> None:
        # Built-ins register first, so a third-party plugin reusing a built-in name
        # (``system.uptime``) is the one refused, whatever the entry points' order.
        # Then in registration order: the first plugin to claim a name keeps it.
        calls = call_each(pm, hook, by_name)
        calls.sort(key=lambda pv: (by_name[pv[0]].source != "built-in", order[pv[0]])
                   if pv[0] in by_name else (True, len(order)))
        for pname, values in calls:
            info = by_name.get(pname)
            for obj in values or []:
                try:
                    add(obj, pname)
                except RegistryError as exc:
                    if info is not None:
                        info.add_error(str(exc))
                    log.error("%s", exc)
                    continue
                if info is not None and listing:
                    getattr(info, listing).append(getattr(obj, "name", str(obj)))

    collect("upkeeper_register_checks", reg.add_check, "checks")
    collect("upkeeper_register_transports", reg.add_transport, "transports")
    collect("upkeeper_register_notifiers", reg.add_notifier, "notifiers")
    collect("upkeeper_register_inventory_sources", reg.add_inventory_source, None)
    collect("upkeeper_register_template_dirs",
            lambda obj, _p: reg.template_dirs.append(str(obj)), None)
    collect("upkeeper_register_report_sections", reg.add_report_section, None)
    return reg
