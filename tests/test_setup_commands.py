"""README's two set-up commands as written, on Debian's own "externally managed" Python:
the first installs into a virtualenv and runs the daily health playbook, the second
(tests/run-all.sh) makes its own venv there, and uses the active one when there is one."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = pytest.mark.slow


def _externally_managed() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    stdlib = subprocess.run([str(SYSTEM_PYTHON), "-c",
                             "import sysconfig; print(sysconfig.get_path('stdlib'))"],
                            capture_output=True, text=True).stdout.strip()
    venv_ok = subprocess.run([str(SYSTEM_PYTHON), "-c", "import ensurepip, venv"],
                             capture_output=True).returncode == 0
    return bool(stdlib) and (Path(stdlib) / "EXTERNALLY-MANAGED").exists() and venv_ok


@pytest.fixture
def debian_path(tmp_path: Path) -> str:
    """A PATH whose python3 is Debian's externally managed one (not a venv's, not pyenv's)."""
    if not _externally_managed():
        pytest.skip("needs Debian's externally managed /usr/bin/python3 with python3-venv")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(SYSTEM_PYTHON)
    return f"{bindir}:/usr/local/bin:/usr/bin:/bin"


def checkout_copy(dest: Path) -> Path:
    """The checkout's files (committed or not, ignored ones left out) copied to ``dest``."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def sh(command: str, cwd: Path, path: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PIP_BREAK_SYSTEM_PACKAGES",
                        "PIP_USER", "PYTHONHOME")}
    env.update(PATH=path, UPKEEPER_NO_APT="1", **extra)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def readme_commands() -> list[str]:
    setup = (ROOT / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", setup, re.S)


def test_readme_set_up_commands_on_an_externally_managed_python(tmp_path, debian_path):
    run_cmd, test_cmd = readme_commands()
    assert test_cmd == "bash tests/run-all.sh"
    repo = checkout_copy(tmp_path / "repo")

    first = sh(run_cmd, repo, debian_path)
    assert first.returncode in (0, 1, 2), first.stdout + first.stderr
    assert "system.uptime" in first.stdout and "UNKNOWN" not in first.stdout, first.stdout

    # The second command, up to running the suite (that is what this test is part of).
    second = sh(test_cmd + " --setup-only", repo, debian_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "== python: .venv/bin/python" in second.stdout
    check = sh(".venv/bin/python -c 'import upkeeper, pytest, ruff, mypy'", repo, debian_path)
    assert check.returncode == 0, check.stderr

    # Inside a virtualenv: that one is used, no .venv is made.
    other = checkout_copy(tmp_path / "other")
    active = repo / ".venv"
    inside = sh(test_cmd + " --setup-only", other, f"{active}/bin:{debian_path}",
                VIRTUAL_ENV=str(active))
    assert inside.returncode == 0, inside.stdout + inside.stderr
    assert f"== python: {active}/bin/python" in inside.stdout
    assert not (other / ".venv").exists()
