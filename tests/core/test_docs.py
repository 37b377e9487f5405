"""Every hook is documented (README table, docs/plugins.md with an example, the spec's own
docstring) and exercised: a plugin implementing every hookspec is installed as a real
distribution and driven through the real CLI, and each hook must actually be called.

The hook list is read from ``upkeeper.hookspecs``; nothing here counts hooks by hand, so a
new hook that is specified but never called by core fails this test.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from upkeeper import hookspecs

ROOT = Path(__file__).resolve().parents[2]


def hook_names() -> list[str]:
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                  if n.startswith("upkeeper_") and hasattr(f, "upkeeper_spec"))


def test_hooks_are_found():
    assert hook_names(), "no hookspecs found"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_in_the_readme_table(name):
    readme = (ROOT / "README.md").read_text()
    assert f"| `{name}(" in readme, f"{name} missing from README's hook table"


@pytest.mark.parametrize("name", hook_names())
def test_every_hook_is_documented_with_an_example(name):
    """docs/plugins.md has a section for the hook whose code example implements it."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    mine = [s for s in sections if f"`{name}(" in s.splitlines()[0]]
    assert mine, f"docs/plugins.md has no section for {name}"
    assert any(f"def {name}(" in s and "```python" in s for s in mine), \
        f"the docs/plugins.md section for {name} has no example implementing it"


@pytest.mark.parametrize("name", hook_names())
def test_every_hookspec_docstring_says_what_and_since(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert ":returns:" in doc or ":param" in doc, name
    assert re.search(r"[Ss]ince\W+1\.\d", doc), f"{name}: no 'since' version in its spec"


RECORDER = '''
"""Implements every upkeeper hookspec and records each call in $HOOK_LOG."""
import json, os
from upkeeper import hookimpl

def _record(name):
    with open(os.environ["HOOK_LOG"], "a") as fh:
        fh.write(json.dumps(name) + "\\n")
'''


def _recorder_source() -> str:
    src = RECORDER
    for name in hook_names():
        spec = getattr(hookspecs, name)
        args = ", ".join(inspect.signature(spec).parameters)
        returns = "[]" if name.startswith("upkeeper_register_") else "None"
        src += textwrap.dedent(f'''
            @hookimpl
            def {name}({args}):
                _record({name!r})
                return {returns}
            ''')
    return src


@pytest.mark.slow
def test_every_hook_is_called_by_core(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "hookrec_mod.py").write_text(_recorder_source())
    dist = site / "hookrec-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hookrec\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[upkeeper]\nhookrec = hookrec_mod\n")
    log = tmp_path / "hooks.jsonl"
    playbook = tmp_path / "pb.yml"
    playbook.write_text(textwrap.dedent(f"""\
        name: hooks
        hosts: localhost
        report:
          - path: {tmp_path}/report-{{client}}.html
        checks:
          - system.command: {{command: "true"}}
        """))
    env = {**os.environ, "HOOK_LOG": str(log), "UPKEEPER_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    cli = [sys.executable, "-m", "upkeeper"]
    for args in (["--help"], ["run", str(playbook)], ["fixes", "available"]):
        proc = subprocess.run([*cli, *args], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    called = {json.loads(line) for line in log.read_text().splitlines()}
    missing = sorted(set(hook_names()) - called)
    assert not missing, f"hooks core never calls: {missing}"
