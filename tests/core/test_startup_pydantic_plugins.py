"""The ``upkeeper`` command does not load pydantic plugins unless asked: pydantic's plugin
loader reads the entry points of every installed distribution on the first model built,
which every run pays (README "Speed")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(tmp_path: Path, extra_env: dict[str, str]) -> bool:
    """Run ``upkeeper run`` (no hosts) with a pydantic plugin installed on the path;
    True when pydantic loaded it."""
    site = tmp_path / "site"
    info = site / "marker_plugin-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: marker-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nmarker = marker_plugin:plugin\n")
    marker = tmp_path / "loaded"
    marker.unlink(missing_ok=True)
    (site / "marker_plugin.py").write_text(textwrap.dedent(f"""
        import pathlib
        pathlib.Path({str(marker)!r}).write_text("yes")

        class _Plugin:
            def new_schema_validator(self, *args, **kwargs):
                return None, None, None

        plugin = _Plugin()
    """))
    book = tmp_path / "pb.yml"
    book.write_text("name: p\nhosts: all\nchecks:\n  - system.uptime: {warn_days: 9}\n")
    inventory = tmp_path / "empty.ini"
    inventory.write_text("[none]\n")
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    env.update(extra_env)
    res = subprocess.run([sys.executable, "-m", "upkeeper", "run", str(book), "-i",
                          str(inventory)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env=env)
    assert res.returncode == 3 and "no hosts match" in res.stderr, res.stderr
    return marker.exists()


@pytest.mark.parametrize(("extra_env", "loaded"), [
    ({}, False),                                   # the command's default: none
    ({"PYDANTIC_DISABLE_PLUGINS": ""}, True),      # the user asks for them
])
def test_pydantic_plugins_load_only_when_asked(tmp_path, extra_env, loaded):
    assert _run(tmp_path, extra_env) is loaded
