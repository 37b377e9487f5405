"""A third-party plugin, pip-installed into a venv made for the test, adds a report section
(with its own metric formatter) and a CLI command through the API 1.1 hooks."""

from __future__ import annotations

import json
import os
import subprocess
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

PLUGIN = '''
"""acme_extras: certificates section and an ``acme-hello`` command."""

from __future__ import annotations

import click

from upkeeper import Check, CheckContext, Params, ReportSection, Result, Status, hookimpl

UPKEEPER_API = "1.1"


class CertCheck(Check[Params]):
    name = "acme_extras.cert"
    platforms = ("*",)

    def run(self, ctx: CheckContext[Params]) -> Result:
        return Result(Status.WARN, "certificate expires soon",
                      metrics={"days_left": 12, "chain_ok": 1, "ignored": 5})


SECTION = ReportSection(
    "certs", "Certificates", ("acme_extras.",), metrics=("days_left", "chain_ok"),
    formats={"days_left": lambda v: f"{v:.0f} days left", "chain_ok": "yes_no"}, order=5)


@click.command("acme-hello")
@click.option("--name", default="world")
def hello(name: str) -> None:
    """Say hello from a plugin."""
    click.echo(f"hello {name} from acme")


@hookimpl
def upkeeper_register_checks():
    return [CertCheck]


@hookimpl
def upkeeper_register_report_sections():
    return [SECTION]


@hookimpl
def upkeeper_register_commands():
    return [hello]
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-extras"
version = "0.1.0"

[project.entry-points.upkeeper]
acme_extras = "acme_extras"

[tool.setuptools]
packages = ["acme_extras"]
'''


def make_venv(where: Path) -> Path:
    """A fresh venv that sees this interpreter's packages (upkeeper and its
    dependencies, as installed for the test run) and installs its own on top."""
    venv.EnvBuilder(with_pip=True).create(where)
    py = where / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True,
                          check=True).stdout.strip()
    # addsitedir also runs that directory's .pth files (an editable upkeeper lives there)
    base = sysconfig.get_paths()["purelib"]
    Path(site, "_upkeeper_test_base.pth").write_text(f"import site; site.addsitedir({base!r})\n")
    return py


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.mark.slow
def test_installed_plugin_adds_a_report_section_and_a_command(tmp_path: Path) -> None:
    src = tmp_path / "acme-extras"
    (src / "acme_extras").mkdir(parents=True)
    (src / "acme_extras" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    (src / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    py = str(make_venv(tmp_path / "venv"))
    installed = run([py, "-m", "pip", "install", "-q", "--no-deps", str(src)])
    assert installed.returncode == 0, installed.stderr
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    upk = [py, "-m", "upkeeper"]

    hello = run([*upk, "acme-hello", "--name", "Bob"], env=env)
    assert (hello.returncode, hello.stdout) == (0, "hello Bob from acme\n"), hello.stderr
    assert "acme-hello" in run([*upk, "--help"], env=env).stdout
    off = run([*upk, "-p", "no:acme_extras", "acme-hello"], env=env)
    assert off.returncode == 3 and "No such command 'acme-hello'" in off.stderr

    listing = {p["name"]: p for p in json.loads(
        run([*upk, "plugins", "--format", "json"], env=env).stdout)}
    assert listing["acme_extras"]["source"] == "third-party"
    assert listing["acme_extras"]["loaded"] and not listing["acme_extras"]["errors"]

    book = tmp_path / "play.yml"
    book.write_text("name: certs\nchecks:\n  - acme_extras.cert\n"
                    "  - system.command: {command: 'echo fine'}\n"
                    "report: {template: client, format: html, path: out/report.html}\n")
    res = run([*upk, "run", str(book)], env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    html = (tmp_path / "out" / "report.html").read_text()
    certs = html.index('<h2 class="section-certs">Certificates')
    assert certs < html.index('<h2 class="section-other">Other checks')
    assert "12 days left" in html and "<strong>yes</strong>" in html
    assert ">ignored<" not in html  # only the metrics the section lists
