"""The architecture is checked by a machine: layers, no cycles, small modules, public API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "upkeeper"
MAX_LINES = 400


def test_import_linter_contracts_hold():
    """.importlinter: cli -> schedule -> after_run -> engine -> ... -> models; core never
    names a plugin; plugins import only the public API."""
    pytest.importorskip("importlinter")
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def _graph():
    grimp = pytest.importorskip("grimp")
    return grimp.build_graph("upkeeper", exclude_type_checking_imports=False, cache_dir=None)


def test_no_import_cycles_type_checking_included():
    graph = _graph()
    modules = sorted(graph.modules)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.find_modules_directly_imported_by(v)):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for m in modules:
        if m not in index:
            strongconnect(m)
    # A package importing its own submodules (re-exports in __init__) is not a cycle of
    # design; a submodule importing its parent package's __init__ back would be.
    real = [c for c in cycles if not all(m.startswith(c[0] + ".") or m == c[0] for m in c)]
    assert not real, f"import cycles: {real}"


def test_no_core_module_over_400_lines():
    big = {str(p.relative_to(ROOT)): n for p in CORE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_subpackage_says_what_it_owns():
    for init in CORE.glob("*/__init__.py"):
        doc = init.read_text().split('"""')
        assert len(doc) >= 3 and len(doc[1].split()) >= 12, \
            f"{init}: no docstring saying what it owns"


def test_plugins_contract_forbids_every_internal_module():
    """Every core module not in PUBLIC_MODULES is forbidden to plugins, including new ones."""
    import configparser

    import upkeeper

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    contract = cfg["importlinter:contract:plugins-use-public-api"]
    forbidden = set(contract["forbidden_modules"].split())
    top = {f"upkeeper.{p.stem}" for p in CORE.glob("*.py")
           if p.stem not in ("__init__", "__main__")}
    top |= {f"upkeeper.{p.parent.name}" for p in CORE.glob("*/__init__.py")}
    internal = top - set(upkeeper.PUBLIC_MODULES)
    assert forbidden == internal, (f"missing: {sorted(internal - forbidden)}, "
                                   f"not internal: {sorted(forbidden - internal)}")
