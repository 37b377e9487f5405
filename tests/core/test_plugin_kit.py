"""The third-party round trip: scaffold, pip install into a fresh venv, run, then break it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from upkeeper.cli.scaffold import ScaffoldError, new_plugin

ROOT = Path(__file__).resolve().parents[2]


def test_scaffold_rejects_bad_names(tmp_path):
    for bad in ("Acme", "1acme", "acme-checks", "class", "upkeeper_x"):
        with pytest.raises(ScaffoldError):
            new_plugin(bad, tmp_path)
    new_plugin("acme", tmp_path)
    with pytest.raises(ScaffoldError, match="not empty"):
        new_plugin("acme", tmp_path)


@pytest.mark.slow
def test_scaffold_passes_its_own_tests_in_process(tmp_path, monkeypatch):
    root = new_plugin("acme_inproc", tmp_path)
    monkeypatch.syspath_prepend(str(root / "src"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests"),
         "-k", "not entry_point"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root / "src")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)


@pytest.mark.slow
def test_third_party_round_trip(tmp_path):
    cli = ["upkeeper", "plugin", "new", "acme_checks", "--dir", str(tmp_path)]
    made = run([sys.executable, "-m", "upkeeper", *cli[1:]])
    assert made.returncode == 0, made.stderr
    plugin_dir = tmp_path / "acme_checks"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = str(env_dir / "bin" / "python")
    # Behind its own packages the new venv sees those of the environment running the tests
    # (dependencies, pip, pytest), whether that is a venv or not: system_site_packages
    # would show the base interpreter's instead, which lacks them inside a venv.
    new_site = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(new_site.stdout.strip()) / "zz-test-environment.pth").write_text("\n".join(ours) + "\n")
    installed = run([py, "-m", "pip", "install", "-q", "--no-deps", str(ROOT),
                     str(plugin_dir)])
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(tmp_path / "state")}
    upk = str(env_dir / "bin" / "upkeeper")

    tests = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                 str(plugin_dir / "tests")], env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr

    book = tmp_path / "play.yml"
    book.write_text("name: round trip\nchecks:\n"
                    "  - acme_checks.file_age: {path: /etc/hostname, warn_age: 1000000h,"
                    " crit_age: 2000000h}\n"
                    "  - system.uptime: {warn_days: 100000}\n")
    ok = run([upk, "run", str(book), "--format", "json"], env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    doc = json.loads(ok.stdout)
    assert [(r["check"], r["status"]) for r in doc["results"]] == [
        ("acme_checks.file_age", "OK"), ("system.uptime", "OK")]

    site = run([py, "-c", "import acme_checks, os; print(os.path.dirname(acme_checks.__file__))"],
               env=env)
    init = Path(site.stdout.strip()) / "__init__.py"
    init.write_text("import acme_dependency_that_is_gone\n")

    broken = run([upk, "run", str(book), "--format", "json"], env=env)
    assert broken.returncode == 3, broken.stdout + broken.stderr
    doc = json.loads(broken.stdout)
    by = {r["check"]: r for r in doc["results"]}
    assert by["system.uptime"]["status"] == "OK"
    assert by["acme_checks.file_age"]["status"] == "UNKNOWN"
    assert "acme_dependency_that_is_gone" in by["acme_checks.file_age"]["summary"]
    assert "acme_checks" in broken.stderr

    listing = run([upk, "plugins", "--format", "json"], env=env)
    info = {p["name"]: p for p in json.loads(listing.stdout)}
    assert info["acme_checks"]["source"] == "third-party"
    assert not info["acme_checks"]["loaded"]
    assert "acme_dependency_that_is_gone" in info["acme_checks"]["errors"][0]
    assert info["system"]["loaded"]
