"""Plugin loading: built-ins through entry points, broken plugins isolated, names unique."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

from tests.core.helpers import Echo, TestPlugin
from upkeeper import hookimpl
from upkeeper.plugins import Registry, RegistryError, get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]


def make_dist(tmp_path: Path, name: str, module_src: str, ep_name: str | None = None) -> None:
    """A real installed distribution (dist-info + module) on sys.path."""
    dist = tmp_path / f"{name}-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[upkeeper]\n{ep_name or name} = {name}_mod\n")
    (tmp_path / f"{name}_mod.py").write_text(textwrap.dedent(module_src))


@pytest.fixture
def site(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.endswith("_mod") and m.startswith("acme")]:
        del sys.modules[mod]


def test_builtins_are_declared_as_entry_points():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = meta["project"]["entry-points"]["upkeeper"]
    on_disk = {p.name.removeprefix("upkeeper_") for p in (ROOT / "plugins").glob("upkeeper_*")
               if (p / "__init__.py").exists()}
    assert set(declared) == on_disk
    assert all(v == f"upkeeper_{k}" for k, v in declared.items())
    system = get_plugin_manager()
    info = {p.name: p for p in system.plugins}
    for name in declared:
        assert info[name].source == "built-in" and info[name].loaded, info[name]
    assert "system.command" in system.registry.checks
    assert info["system"].checks == ["system.command", "system.uptime", "system.service"]


def test_third_party_plugin_loads_and_broken_one_is_skipped(site):
    make_dist(site, "acme_good", """
        from upkeeper import hookimpl, Check, Result, Status
        class Hello(Check):
            name = "acme.hello"
            platforms = ("*",)
            def run(self, ctx):
                return Result(Status.OK, "hi")
        @hookimpl
        def upkeeper_register_checks():
            return [Hello]
    """)
    make_dist(site, "acme_broken", "import no_such_module_xyz\n")
    system = get_plugin_manager()
    info = {p.name: p for p in system.plugins}
    assert info["acme_good"].source == "third-party" and info["acme_good"].loaded
    assert "acme.hello" in system.registry.checks
    assert not info["acme_broken"].loaded
    assert "no_such_module_xyz" in info["acme_broken"].errors[0]
    assert "system.uptime" in system.registry.checks


def test_incompatible_api_version_is_skipped(site):
    make_dist(site, "acme_future", """
        UPKEEPER_API = "2.0"
        from upkeeper import hookimpl
        @hookimpl
        def upkeeper_register_checks():
            return []
    """)
    info = {p.name: p for p in get_plugin_manager().plugins}
    assert not info["acme_future"].loaded
    assert "plugin API 2.0" in info["acme_future"].errors[0]


def test_disable_by_env_and_argument(monkeypatch):
    monkeypatch.setenv("UPKEEPER_DISABLE_PLUGINS", "system, disk")
    system = get_plugin_manager(disabled=["backup"])
    info = {p.name: p for p in system.plugins}
    assert info["system"].disabled and info["disk"].disabled and info["backup"].disabled
    assert "system.uptime" not in system.registry.checks


def test_duplicate_check_names_both_plugins():
    class Again:
        @hookimpl
        def upkeeper_register_checks(self):
            return [Echo]

    system = get_plugin_manager(load_entrypoints=False,
                                extra_plugins=[("first", TestPlugin()), ("second", Again())])
    info = {p.name: p for p in system.plugins}
    assert info["second"].errors == [
        "check 'test.echo' is registered twice: by plugin 'first' and by plugin 'second'"]
    reg = Registry()
    reg.add_check(Echo, "a")
    with pytest.raises(RegistryError, match="'a' and by plugin 'b'"):
        reg.add_check(Echo, "b")


def test_malformed_registrations_are_reported():
    class NoName(Echo):
        name = ""

    class BadParams(Echo):
        name = "bad.params"
        Params = dict  # type: ignore[assignment]

    class Raises:
        @hookimpl
        def upkeeper_register_checks(self):
            raise RuntimeError("plugin bug")

    class Weird:
        @hookimpl
        def upkeeper_register_checks(self):
            return [NoName, BadParams, object]

    system = get_plugin_manager(load_entrypoints=False,
                                extra_plugins=[("raises", Raises()), ("weird", Weird())])
    info = {p.name: p for p in system.plugins}
    assert "plugin bug" in info["raises"].errors[0]
    assert len(info["weird"].errors) == 3
    assert system.registry.checks == {}


def test_typo_in_hook_name_is_caught():
    class Typo:
        @hookimpl
        def upkeeper_register_chekcs(self):
            return []

    system = get_plugin_manager(load_entrypoints=False, extra_plugins=[("typo", Typo())])
    info = {p.name: p for p in system.plugins}
    assert not info["typo"].loaded
    assert "upkeeper_register_chekcs" in info["typo"].errors[0]


def test_registries_are_per_instance():
    a = get_plugin_manager(load_entrypoints=False, extra_plugins=[("t", TestPlugin())])
    b = get_plugin_manager(load_entrypoints=False)
    assert "test.echo" in a.registry.checks and "test.echo" not in b.registry.checks


def test_template_dirs_and_inventory_sources_hooks(tmp_path):
    class Extras:
        @hookimpl
        def upkeeper_register_template_dirs(self):
            return [str(tmp_path)]

        @hookimpl
        def upkeeper_register_inventory_sources(self):
            return [source]

        @hookimpl
        def upkeeper_register_notifiers(self):
            from upkeeper import Notifier

            class Null(Notifier):
                name = "null"

                def send(self, notification):
                    return None
            return [Null]

    class Source:
        name = "psa"

        def matches(self, source):
            return source.startswith("psa:")

        def load(self, source):
            return {}

    source = Source()
    reg = get_plugin_manager(load_entrypoints=False, extra_plugins=[("x", Extras())]).registry
    assert reg.template_dirs == [str(tmp_path)]
    assert reg.inventory_sources == [source]
    assert reg.notifier("null").name == "null"


def test_trace_shows_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv("UPKEEPER_TRACE_PLUGINS", "1")
    get_plugin_manager(load_entrypoints=False, extra_plugins=[("t", TestPlugin())])
    err = capsys.readouterr().err
    assert "[plugins] t: upkeeper_register_checks()" in err
    assert "[plugins] core: upkeeper_register_transports()" in err


def test_hooks_run_in_pluggys_order():
    """tryfirst runs first, trylast last, otherwise the last registered first (pluggy)."""
    calls: list[str] = []

    def plugin(tag: str, **marks: bool) -> object:
        class P:
            @hookimpl(**marks)
            def upkeeper_result(self, result):
                calls.append(tag)
        return P()

    system = get_plugin_manager(load_entrypoints=False, extra_plugins=[
        ("early", plugin("early", tryfirst=True)), ("a", plugin("a")), ("b", plugin("b")),
        ("late", plugin("late", trylast=True))])
    system.call("upkeeper_result", result=None)
    pluggy_order: list[str] = []
    calls_before = list(calls)
    calls.clear()
    system.pm.hook.upkeeper_result(result=None)
    pluggy_order = list(calls)
    assert calls_before == pluggy_order == ["early", "b", "a", "late"]


def test_hook_wrappers_are_refused_with_a_clear_error():
    class Wraps:
        @hookimpl(wrapper=True)
        def upkeeper_result(self, result):
            return (yield)

    class OldStyle:
        @hookimpl(hookwrapper=True)
        def upkeeper_run_finished(self, run):
            yield

    system = get_plugin_manager(load_entrypoints=False, extra_plugins=[
        ("wraps", Wraps()), ("old", OldStyle()), ("t", TestPlugin())])
    info = {p.name: p for p in system.plugins}
    for name, hook in (("wraps", "upkeeper_result"), ("old", "upkeeper_run_finished")):
        assert not info[name].loaded
        assert "hook wrappers are not supported" in info[name].errors[0]
        assert hook in info[name].errors[0]
        assert not system.pm.is_registered(system.pm.get_plugin(name))
    assert info["t"].loaded and "test.echo" in system.registry.checks
    system.call("upkeeper_result", result=None)  # nothing left that would be misused


@pytest.mark.parametrize(("declared", "ok"), [
    ("1", True), ("1.0", True), ("1.1", True), ("1.9", False), ("2.0", False),
    ("0.9", False), ("one", False)])
def test_api_version_is_checked_for_object_plugins_too(declared, ok):
    class Obj:
        UPKEEPER_API = declared

        @hookimpl
        def upkeeper_register_checks(self):
            return [Echo]

    system = get_plugin_manager(load_entrypoints=False, extra_plugins=[("obj", Obj())])
    info = system.plugins[-1]
    assert info.loaded is ok, info.errors
    assert ("test.echo" in system.registry.checks) is ok
    if not ok:
        assert "skipped" in info.errors[0]


def test_newer_minor_module_plugin_is_refused(site):
    make_dist(site, "acme_newer", """
        UPKEEPER_API = "1.99"
        from upkeeper import hookimpl
        @hookimpl
        def upkeeper_register_checks():
            return []
    """)
    info = {p.name: p for p in get_plugin_manager().plugins}
    assert not info["acme_newer"].loaded
    assert "plugin API 1.99, this upkeeper provides 1.2" in info["acme_newer"].errors[0]


def test_deprecated_hooks_warn_for_module_and_object_plugins(site):
    """A spec marked with pluggy's warn_on_impl is reported on every implementing plugin."""
    import types

    import pluggy

    from upkeeper.hookspecs import hookspec
    from upkeeper.plugins import _register

    spec_mod = types.ModuleType("old_specs")

    @hookspec(warn_on_impl=DeprecationWarning("upkeeper_old_hook is deprecated since 1.1"))
    def upkeeper_old_hook() -> None:
        """Old."""

    spec_mod.upkeeper_old_hook = upkeeper_old_hook  # type: ignore[attr-defined]

    class Obj:
        @hookimpl
        def upkeeper_old_hook(self):
            return None

    module = types.ModuleType("acme_mod_plugin")

    @hookimpl
    def _impl() -> None:
        return None

    module.upkeeper_old_hook = _impl  # type: ignore[attr-defined]
    from upkeeper.plugins import PluginInfo

    pm = pluggy.PluginManager("upkeeper")
    pm.add_hookspecs(spec_mod)
    for name, obj in (("obj", Obj()), ("mod", module)):
        info = PluginInfo(name=name)
        _register(pm, info, obj)
        assert info.loaded
        assert info.warnings == ["upkeeper_old_hook is deprecated since 1.1"]


def test_third_party_cannot_take_a_builtin_name(site):
    """The newcomer is refused and named; the built-in keeps working, whatever the order."""
    make_dist(site, "aaa_shadow", """
        from upkeeper import hookimpl, Check, Result, Status
        class Uptime(Check):
            name = "system.uptime"
            platforms = ("*",)
            def run(self, ctx):
                return Result(Status.OK, "shadowed")
        @hookimpl
        def upkeeper_register_checks():
            return [Uptime]
    """)
    system = get_plugin_manager()
    info = {p.name: p for p in system.plugins}
    assert system.registry.check("system.uptime").__module__.startswith("upkeeper_system")
    assert info["system"].errors == [] and "system.uptime" in info["system"].checks
    assert "registered twice" in info["aaa_shadow"].errors[0]
    assert "'system'" in info["aaa_shadow"].errors[0]


def test_plugin_errors_are_bounded():
    from upkeeper.plugins import MAX_PLUGIN_ERRORS, PluginInfo

    info = PluginInfo(name="noisy")
    for n in range(MAX_PLUGIN_ERRORS * 50):
        info.add_error(f"error {n}")
    assert len(info.errors) == MAX_PLUGIN_ERRORS
    assert info.errors_dropped == MAX_PLUGIN_ERRORS * 49
