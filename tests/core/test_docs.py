"""Every hook is documented in the README and exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

from upkeeper import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def hook_names() -> list[str]:
    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
            if n.startswith("upkeeper_")]


def test_every_hook_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    names = hook_names()
    assert len(names) == 10
    for name in names:
        assert f"| `{name}(" in readme, f"{name} missing from README's hook table"


def test_every_hook_has_a_test():
    me = Path(__file__).resolve()
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py")
                        if p.resolve() != me)
    for name in hook_names():
        assert f"def {name}(" in sources, f"no test implements {name}"


def test_every_hookspec_is_documented():
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert ":returns:" in doc or ":param" in doc, name
