"""``upkeeper plugin new``: a pip-installable plugin package that passes its own tests."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from upkeeper import __version__
from upkeeper.plugins import API_VERSION

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")

PYPROJECT = '''[build-system]
requires = ["setuptools>=69"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "upkeeper checks: {name}"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["upkeeper>={version},<{next_major}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This line is what makes upkeeper load the plugin: no other step is needed.
[project.entry-points.upkeeper]
{name} = "{name}"

[tool.setuptools.packages.find]
where = ["src"]
'''

INIT = '''"""upkeeper plugin {name}: registers its checks with upkeeper."""

from __future__ import annotations

from typing import Any

from upkeeper import hookimpl

from {name}.checks import FileAge

#: The upkeeper plugin API this plugin was written for (same major, minor at most ours).
UPKEEPER_API = "{api}"


@hookimpl
def upkeeper_register_checks() -> list[type[Any]]:
    return [FileAge]
'''

CHECKS = '''"""Checks of the {name} plugin. Parsing lives in pure functions, tested from text."""

from __future__ import annotations

from pydantic import Field

from upkeeper import Check, CheckContext, Params, Result, Status
from upkeeper.measures import Duration, format_duration, grade


class FileAgeParams(Params):
    path: str = Field(description="Absolute path of the file whose age is checked",
                      pattern=r"^/")
    warn_age: Duration = Field("26h", validate_default=True,
                               description="WARN when at least this old")
    crit_age: Duration = Field("50h", validate_default=True,
                               description="CRIT when at least this old")


def parse_stat_epoch(text: str) -> int:
    """Output of `stat -c %Y FILE` -> modification time (seconds since the epoch)."""
    return int(text.strip().splitlines()[-1])


class FileAge(Check[FileAgeParams]):
    """How old a file is (a nightly export, a heartbeat file...)."""

    name = "{name}.file_age"
    description = "Age of a file; WARN/CRIT at warn_age/crit_age"
    Params = FileAgeParams
    platforms = ("linux",)

    def run(self, ctx: CheckContext[FileAgeParams]) -> Result:
        p = ctx.params
        res = ctx.run(["stat", "-c", "%Y", "--", p.path])
        if not res.ok:
            return Result(Status.CRIT, f"{{p.path}}: {{res.stderr.strip() or 'missing'}}")
        try:
            mtime = parse_stat_epoch(res.stdout)
        except (ValueError, IndexError):
            return Result(Status.UNKNOWN, f"unexpected stat output: {{res.stdout[:80]!r}}")
        age = ctx.now.timestamp() - mtime
        status = grade(age, p.warn_age.total_seconds(), p.crit_age.total_seconds())
        return Result(status, f"{{p.path}} is {{format_duration(age)}} old",
                      metrics={{"age_hours": round(age / 3600, 2)}})
'''

TESTS = '''"""Tests for {name}, using upkeeper.testing (installed with upkeeper)."""

from __future__ import annotations

from datetime import datetime, timezone

from upkeeper import Status
from upkeeper.testing import FakeTransport, run_check

from {name}.checks import FileAge, parse_stat_epoch

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


def test_parse_stat_epoch() -> None:
    assert parse_stat_epoch("1767355200\\n") == 1767355200


def test_fresh_file_is_ok() -> None:
    mtime = int(NOW.timestamp()) - 3600
    t = FakeTransport(responses={{"stat -c %Y -- /srv/export.csv": f"{{mtime}}\\n"}})
    (result,) = run_check(FileAge, {{"path": "/srv/export.csv"}}, transport=t, now=NOW)
    assert result.status is Status.OK
    assert result.metrics == {{"age_hours": 1.0}}
    t.assert_all_called()


def test_old_file_is_crit_and_missing_file_is_crit() -> None:
    mtime = int(NOW.timestamp()) - 100 * 3600
    t = FakeTransport(responses={{"stat": f"{{mtime}}"}})
    (result,) = run_check(FileAge, {{"path": "/x"}}, transport=t, now=NOW)
    assert result.status is Status.CRIT
    t = FakeTransport(responses={{"stat": (1, "", "stat: cannot statx '/x': No such file")}})
    (result,) = run_check(FileAge, {{"path": "/x"}}, transport=t, now=NOW)
    assert result.status is Status.CRIT and "No such file" in result.summary


def test_runs_in_a_playbook_through_the_entry_point(tmp_path) -> None:
    from upkeeper.testing import run_playbook

    exported = tmp_path / "export.csv"
    exported.write_text("a,b\\n")
    run = run_playbook({{"name": "exports", "hosts": "localhost",
                        "checks": [{{"{name}.file_age": {{"path": str(exported)}}}}]}},
                       builtins=True)
    (result,) = run.results
    assert result.status is Status.OK, result.summary
'''

README = '''# {name}

An [upkeeper](https://pypi.org/project/upkeeper/) plugin.

```sh
pip install ./{name}          # or: pip install {dist}
upkeeper checks               # lists {name}.file_age
```

```yaml
name: exports are fresh
hosts: all
checks:
  - {name}.file_age: {{path: /srv/export.csv, warn_age: 26h}}
```

Develop: `pip install -e './{name}[test]' && pytest {name}/tests`.
Publish: `python -m build` then `twine upload dist/*`.
'''

PLAYBOOK = '''name: {name} example
hosts: all
checks:
  - {name}.file_age: {{path: /etc/hostname, warn_age: 100000d, crit_age: 200000d}}
'''


class ScaffoldError(ValueError):
    """The plugin name or target directory is unusable."""


def new_plugin(name: str, parent: Path) -> Path:
    """Write a plugin package ``parent/name`` and return its path."""
    if not _NAME_RE.match(name) or keyword.iskeyword(name) or name.startswith("upkeeper"):
        raise ScaffoldError(
            f"plugin name {name!r} must be a lower-case Python identifier (e.g. acme_checks) "
            "not starting with 'upkeeper'")
    root = parent / name
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} already exists and is not empty")
    major = int(__version__.split(".")[0])
    fields = {"name": name, "dist": name.replace("_", "-"), "api": API_VERSION,
              "version": __version__, "next_major": f"{major + 1}"}
    files = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"src/{name}/__init__.py": INIT,
        f"src/{name}/checks.py": CHECKS,
        f"src/{name}/py.typed": "",
        "tests/test_checks.py": TESTS,
        "examples/playbook.yml": PLAYBOOK,
    }
    for rel, template in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.format(**fields), encoding="utf-8")
    return root
