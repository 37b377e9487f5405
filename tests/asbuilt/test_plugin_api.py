"""A third-party plugin adds a fact category (collected by its own check) and a document
section, through the public API only; runs snapshot its facts, ``docs build`` shows the
section and its changes, and the client report gets the ``docs`` section."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from upkeeper import DocCategory, hookimpl
from upkeeper.asbuilt.api import doc_categories
from upkeeper.plugins import get_plugin_manager

PLUGIN = '''
"""acme_inv: software licences as facts, and their section in client documents."""
import json
from pathlib import Path

from upkeeper import Check, CheckContext, DocCategory, Params, Result, Status, hookimpl

UPKEEPER_API = "1.2"


class CollectParams(Params):
    path: str


class Collect(Check[CollectParams]):
    name = "acme_inv.collect"
    Params = CollectParams
    platforms = ("*",)

    def run(self, ctx: CheckContext[CollectParams]) -> Result:
        data = json.loads(Path(ctx.params.path).read_text())
        facts = {"schema_version": 1, "host": ctx.host.name, "platform": "linux",
                 "collected_at": data["at"], "identity_keys": {"machine_id": "acme-m-1"},
                 "sections": {"acme_licences": {"source": "licence server",
                              "collected_at": data["at"], "unavailable": None,
                              "items": data["licences"]}}}
        return Result(Status.OK, "licences collected", details={"facts": facts})


LICENCES = DocCategory(
    "acme_licences", "Licences", "items", keys=("product",), volatile=("seats_used",),
    rows=lambda section: [{"product": i["product"], "seats": f"{i['seats_used']}/{i['seats']}"}
                          for i in section.get("items", [])])


@hookimpl
def upkeeper_register_checks():
    return [Collect]


@hookimpl
def upkeeper_register_doc_categories():
    return [LICENCES]
'''


def _install(site: Path) -> None:
    site.mkdir()
    (site / "acme_inv.py").write_text(PLUGIN)
    dist = site / "acme_inv-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-inv\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[upkeeper]\nacme_inv = acme_inv\n")


@pytest.mark.slow
def test_third_party_category_and_section_through_the_cli(tmp_path: Path) -> None:
    _install(tmp_path / "site")
    data = tmp_path / "licences.json"
    (tmp_path / "inv.yml").write_text(textwrap.dedent("""\
        all:
          hosts:
            localhost: {ansible_connection: local, client: acme}
        """))
    (tmp_path / "pb.yml").write_text(textwrap.dedent(f"""\
        name: inventory-docs
        hosts: all
        report:
          - path: {tmp_path}/report-{{client}}.html
        checks:
          - acme_inv.collect: {{path: {data}}}
        """))
    env = {**os.environ, "UPKEEPER_STATE_DIR": str(tmp_path / "state"),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"),
                                          os.environ.get("PYTHONPATH", "")])}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "upkeeper", *args], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    licences = [{"product": "<b>CAD</b>", "seats": 10, "seats_used": 3}]
    data.write_text(json.dumps({"at": 1_764_000_000.0, "licences": licences}))
    cli("run", "-i", "inv.yml", "pb.yml")
    licences = [{"product": "<b>CAD</b>", "seats": 10, "seats_used": 9},
                {"product": "Office", "seats": 25, "seats_used": 1}]
    data.write_text(json.dumps({"at": 1_764_086_400.0, "licences": licences}))
    cli("run", "-i", "inv.yml", "pb.yml")
    cli("docs", "build", "-o", "out", "--since", "2025-11-25")
    index = json.loads((tmp_path / "out" / "acme" / "docs.json").read_text())
    assert [(c["category"], c["action"], c["item"]) for c in index["changes"]] == [
        ("acme_licences", "added", "Office")]  # seats_used is volatile
    page = next((tmp_path / "out" / "acme" / "hosts").glob("*.html")).read_text()
    assert "<h2 id=\"acme_licences\">Licences</h2>" in page
    assert "&lt;b&gt;CAD&lt;/b&gt;" in page and "<td>9/10</td>" in page
    report = (tmp_path / "report-acme.html").read_text()
    docs_section = report[report.index('class="section-docs"'):]
    assert "1 host documented as of 2025-11-25T16:00:00Z" in docs_section
    assert "appeared" in docs_section  # changes since the previous month: all new
    schema = cli("docs", "schema").stdout
    assert json.loads(schema)["properties"]["schema_version"] == {"const": 1}


class _Dup:
    @hookimpl
    def upkeeper_register_doc_categories(self) -> list[object]:
        return [DocCategory("software", "Mine", "items"), "not a category",
                DocCategory("acme_ok", "Fine", "fields")]


def test_bad_registrations_are_refused_and_named_on_the_plugin() -> None:
    plugins = get_plugin_manager(extra_plugins=[("dup", _Dup())], load_entrypoints=False)
    assert [c.key for c in doc_categories(plugins)] == ["acme_ok"]
    errors = next(p for p in plugins.plugins if p.name == "dup").errors
    assert any("'software'" in e and "already registered by upkeeper" in e for e in errors)
    assert any("not a DocCategory" in e for e in errors)


def test_doc_category_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="not an identifier"):
        DocCategory("my-key", "x")
    with pytest.raises(ValueError, match="tuple of field names"):
        DocCategory("k", "x", keys="name")  # type: ignore[arg-type]
