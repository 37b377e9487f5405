"""Checks registered by reference (``CheckRef``): imported on first use, a broken one
reported like a broken plugin, and ``upkeeper run`` importing only the checks it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from upkeeper import CheckRef
from upkeeper.plugins import UnknownNameError, get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
    from upkeeper import CheckRef, hookimpl

    UPKEEPER_API = "1.1"

    @hookimpl
    def upkeeper_register_checks():
        return [CheckRef("acme.hello", "acme_lazy_checks:Hello"),
                CheckRef("acme.gone", "acme_lazy_nowhere:Gone"),
                CheckRef("acme.raises", "acme_lazy_raises:Raises"),
                CheckRef("acme.notcheck", "acme_lazy_checks:NotACheck"),
                CheckRef("acme.misnamed", "acme_lazy_checks:Hello2")]
"""
CHECKS = """
    from upkeeper import Check, Result, Status

    IMPORTS.append(__name__)

    class Hello(Check):
        name = "acme.hello"
        platforms = ("*",)
        def run(self, ctx):
            return Result(Status.OK, "hello")

    class Hello2(Hello):
        name = "acme.other"

    class NotACheck:
        name = "acme.notcheck"
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A third-party distribution whose checks are all CheckRefs (one good, four broken).
    Its check module records each import in ``builtins.IMPORTS``."""
    dist = tmp_path / "acme_lazy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme_lazy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[upkeeper]\nacme_lazy = acme_lazy_plugin\n")
    (tmp_path / "acme_lazy_plugin.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "acme_lazy_checks.py").write_text(
        "import builtins\nIMPORTS = builtins.__dict__.setdefault('IMPORTS', [])\n"
        + textwrap.dedent(CHECKS))
    (tmp_path / "acme_lazy_raises.py").write_text("raise RuntimeError('no licence file')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import builtins

    monkeypatch.setattr(builtins, "IMPORTS", [], raising=False)
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("acme_lazy")]:
        del sys.modules[mod]


@pytest.mark.parametrize(("name", "target"), [
    ("", "a.b:C"), ("x.y", "a.b"), ("x.y", "a.b:"), ("x.y", ":C"), ("x.y", "a..b:C"),
    ("x.y", "a.b:C.D"), ("x.y", "a-b:C"), ("x.y", "a.b:C; rm -rf /"), ("x.y", None),
])
def test_malformed_reference_is_refused_when_built(name, target):
    with pytest.raises(ValueError, match="CheckRef"):
        CheckRef(name, target)


def test_reference_is_imported_on_first_use_only(site):
    import builtins

    system = get_plugin_manager()
    info = {p.name: p for p in system.plugins}["acme_lazy"]
    assert info.loaded and info.errors == []
    assert "acme.hello" in info.checks and "acme.hello" in system.registry.checks
    assert "acme_lazy_checks" not in sys.modules and builtins.IMPORTS == []

    cls = system.registry.check("acme.hello")
    assert cls.__module__ == "acme_lazy_checks" and cls.name == "acme.hello"
    assert system.registry.check("acme.hello") is cls
    assert system.registry.checks["acme.hello"] is cls
    assert builtins.IMPORTS == ["acme_lazy_checks"]


@pytest.mark.parametrize(("name", "why"), [
    ("acme.gone", "ModuleNotFoundError: No module named 'acme_lazy_nowhere'"),
    ("acme.raises", "RuntimeError: no licence file"),
    ("acme.notcheck", "which is not a Check"),
    ("acme.misnamed", "acme_lazy_checks:Hello2 is named 'acme.other'"),
])
def test_broken_reference_is_a_plugin_error_and_unknown(site, name, why):
    system = get_plugin_manager()
    registry = system.registry
    with pytest.raises(UnknownNameError):
        registry.check(name)
    reason = registry.missing_check_reason(name)
    assert reason is not None and reason.startswith(f"check '{name}' is not available")
    assert "plugin acme_lazy" in reason and why in reason
    info = {p.name: p for p in system.plugins}["acme_lazy"]
    assert len(info.errors) == 1 and why in info.errors[0] and name in info.errors[0]
    assert name not in info.checks and name not in registry.checks
    # the plugin's other check still works, and asking again does not add errors
    assert registry.check("acme.hello").name == "acme.hello"
    with pytest.raises(UnknownNameError):
        registry.check(name)
    assert len(info.errors) == 1


def test_concurrent_first_use_resolves_once(site):
    """Hosts run on worker threads: all of them get the class (or the same error), and a
    broken reference is recorded once."""
    registry = get_plugin_manager().registry
    start = threading.Barrier(16)
    got: list[object] = []

    def use() -> None:
        start.wait()
        for name in ("acme.hello", "acme.gone"):
            try:
                got.append(registry.check(name))
            except UnknownNameError:
                got.append("unknown")

    threads = [threading.Thread(target=use) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    hello = registry.check("acme.hello")
    assert sorted(map(str, got)) == sorted([str(hello)] * 16 + ["unknown"] * 16)
    assert list(registry.broken_checks) == ["acme.gone"]


def _upk(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *sys.path])}
    return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                          text=True, timeout=120, env=env, cwd=site)


def test_run_reports_a_broken_reference_per_host_and_runs_the_rest(site):
    (site / "pb.yml").write_text(textwrap.dedent("""
        name: lazy
        hosts: all
        checks:
          - acme.hello: {}
          - acme.gone: {}
          - system.uptime: {}
    """))
    res = _upk(site, "run", "pb.yml", "--format", "json")
    results = {r["check"]: r for r in json.loads(res.stdout)["results"]}
    assert results["acme.hello"]["status"] == "OK"
    assert results["system.uptime"]["status"] in ("OK", "WARN")
    gone = results["acme.gone"]
    assert gone["status"] == "UNKNOWN" and res.returncode == 3
    assert "check 'acme.gone' is not available (plugin acme_lazy: check acme.gone " \
           "(acme_lazy_nowhere:Gone) failed to load" in gone["summary"]
    assert "acme.gone" in res.stderr  # and warned about once, on stderr


def test_plugins_and_checks_commands_resolve_every_reference(site):
    listing = _upk(site, "plugins", "--format", "json")
    info = {p["name"]: p for p in json.loads(listing.stdout)}["acme_lazy"]
    assert info["checks"] == ["acme.hello"]
    assert len(info["errors"]) == 4
    checks = _upk(site, "checks", "--format", "json")
    names = [c["name"] for c in json.loads(checks.stdout)]
    assert "acme.hello" in names and "disk.smart" in names and "patching.apply" in names
    assert not {"acme.gone", "acme.raises", "acme.notcheck", "acme.misnamed"} & set(names)
    described = {c["name"]: c for c in json.loads(checks.stdout)}
    assert described["acme.hello"]["plugin"] == "acme_lazy"


IMPORTED_BY_RUN = """
import json, sys
from upkeeper.plugins import get_plugin_manager
from upkeeper.engine.playbook import load_playbook
system = get_plugin_manager()
registered = sorted(m for m in sys.modules if m.startswith("upkeeper_"))
load_playbook(sys.argv[1], system.registry)
used = sorted(m for m in sys.modules if m.startswith("upkeeper_"))
print(json.dumps([registered, used]))
"""


def test_builtin_checks_are_imported_only_when_a_playbook_uses_them(tmp_path):
    """Registering the built-ins imports no check module; loading a playbook imports the
    modules of its own checks and none of the others."""
    (tmp_path / "pb.yml").write_text("name: one\nhosts: all\nchecks:\n  - system.uptime: {}\n")
    res = subprocess.run([sys.executable, "-c", IMPORTED_BY_RUN, str(tmp_path / "pb.yml")],
                         capture_output=True, text=True, timeout=120, check=True)
    registered, used = json.loads(res.stdout)
    check_modules = ("upkeeper_system.command", "upkeeper_system.uptime",
                     "upkeeper_disk.usage", "upkeeper_disk.smart", "upkeeper_backup.borg",
                     "upkeeper_backup.restic", "upkeeper_backup.files",
                     "upkeeper_backup.wbadmin")
    assert not set(check_modules) & set(registered), registered
    assert set(check_modules) & set(used) == {"upkeeper_system.uptime"}, used
