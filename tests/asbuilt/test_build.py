"""docs build output: layout, determinism, the published schema, hostile facts (HTML and
CSV injection, planted secrets), self-contained pages."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from tests.asbuilt.factsgen import DAY, NOW, doc, later, store
from upkeeper.asbuilt.document import build_all, schema_text
from upkeeper.asbuilt.render import csv_cell, write_documents
from upkeeper.cli.docs_cmd import hygiene
from upkeeper.store.history import History

SECRET = "hunter2-Zq9x"
HOSTILE = "<script>alert('x')</script>"


def hostile(d: dict[str, Any]) -> None:
    s = d["sections"]
    s["software"]["items"].append({"name": HOSTILE, "version": "=HYPERLINK(\"x\")",
                                   "arch": "amd64"})
    s["ports"]["items"][0]["process"] = f"mysqld --password={SECRET}"
    s["services"]["items"].append({"name": "app", "enabled": True, "running": True,
                                   "environment": {"DB_PASSWORD": SECRET, "HOME": "/root"}})
    s["acme_env"] = {"source": "env", "collected_at": d["collected_at"], "unavailable": None,
                     "fields": {"password": SECRET, "api_token": SECRET,
                                "note": f"PGPASSWORD={SECRET} psql"}}
    s["identity"]["fields"]["model"] = "-2+3"


def _setup(hist: History) -> None:
    first = doc("web1", "m-web1", NOW - 40 * DAY)
    store(hist, first)
    store(hist, later(first, 39, hostile))
    store(hist, doc("=cmd|' /C calc'!A0", "m-evil", NOW - 2 * DAY), client="acme")
    store(hist, doc("db1", "m-db1", NOW - 3 * DAY), client="globex")


def _build(hist: History, out: Path) -> dict[str, int]:
    docs = build_all(hist, since=NOW - 38 * DAY)
    return write_documents(docs, out, hygiene()).files


def test_layout_and_byte_identical_rebuilds(hist: History, tmp_path: Path) -> None:
    _setup(hist)
    first = _build(hist, tmp_path / "a")
    second = _build(hist, tmp_path / "b")
    assert first.keys() == second.keys()
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    names = set(first)
    assert {"index.html", "index.md", "acme/index.html", "acme/index.md", "acme/docs.json",
            "acme/hosts.csv", "globex/docs.json"} <= names
    assert sum(1 for n in names if n.startswith("acme/hosts/") and n.endswith(".html")) == 2


def test_docs_json_follows_the_published_schema(hist: History, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    _setup(hist)
    _build(hist, tmp_path)
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    index = json.loads((tmp_path / "acme" / "docs.json").read_text())
    jsonschema.validate(index, schema)
    assert index["schema_version"] == 1 and len(index["hosts"]) == 2
    host_schema = {"$defs": schema["$defs"], "$ref": "#/$defs/host_file"}
    for entry in index["hosts"]:
        host = json.loads((tmp_path / "acme" / entry["facts"]).read_text())
        jsonschema.validate(host, host_schema)
        assert host["id"] == entry["id"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**index, "schema_version": 2}, schema)


def test_hostile_strings_are_escaped_and_secrets_never_written(hist: History,
                                                               tmp_path: Path) -> None:
    _setup(hist)
    files = _build(hist, tmp_path)
    texts = {n: (tmp_path / n).read_text() for n in files}
    for name, text in texts.items():
        assert SECRET not in text, f"secret in {name}"
        if name.endswith(".html"):
            assert "<script>" not in text, name
            assert "http://" not in text and "https://" not in text, f"external link {name}"
            assert "<link" not in text and " src=" not in text, name
    page = next(t for n, t in texts.items() if n.startswith("acme/hosts/web1") and
                n.endswith(".html"))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    assert "--password=********" in page and "PGPASSWORD=********" in page
    md = next(t for n, t in texts.items() if n.startswith("acme/hosts/web1") and
              n.endswith(".md"))
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert not [r for r in hist.query("SELECT doc FROM asbuilt_snapshots") if SECRET in r[0]]


def test_hosts_csv_cannot_run_formulas(hist: History, tmp_path: Path) -> None:
    _setup(hist)
    _build(hist, tmp_path)
    rows = list(csv.DictReader((tmp_path / "acme" / "hosts.csv").open()))
    assert len(rows) == 2
    names = sorted(r["name"] for r in rows)
    assert names == ["'=cmd|' /C calc'!A0", "web1"]
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())
    assert next(r for r in rows if r["name"] == "web1")["model"] == "'-2+3"
    assert [csv_cell(v) for v in ("@SUM(A1)", "+1", "\tx", "a=b", None)] == [
        "'@SUM(A1)", "'+1", "'\tx", "a=b", ""]


def test_renamed_host_page_replaces_the_old_one(hist: History, tmp_path: Path) -> None:
    first = doc("web1", "m-web1", NOW - 3 * DAY)
    store(hist, first)
    _build(hist, tmp_path)
    assert next(p.name for p in (tmp_path / "acme" / "hosts").glob("*.md")).startswith("web1-")

    def rename(d: dict[str, Any]) -> None:
        d["host"] = "web2"
    store(hist, later(first, 1, rename))
    _build(hist, tmp_path)
    pages = sorted(p.name for p in (tmp_path / "acme" / "hosts").iterdir())
    assert len(pages) == 3 and all(p.startswith("web2-") for p in pages)
    assert "also known as web1" in (tmp_path / "acme" / "hosts" / pages[0]).read_text()


def test_malformed_sections_never_break_a_build(hist: History, tmp_path: Path) -> None:
    bad = doc("odd", 12345, NOW - DAY)  # type: ignore[arg-type]
    bad["sections"].update({
        "software": {"items": ["not a dict", None, {"name": ["x"], "version": {"a": 1}}]},
        "os": {"fields": "a string"}, "ports": ["a list"], "weird key!": {"items": [{}]},
        "certificates": {"items": [{"source": "f", "not_after": {"unavailable": "no"}},
                                   {"source": "g", "not_after": "yesterday-ish"}]}})
    store(hist, bad)
    store(hist, later(doc("odd", None, NOW - 40 * DAY), 39))
    files = _build(hist, tmp_path)
    assert any(n.startswith("acme/hosts/odd-") for n in files)


def test_forked_workers_write_the_same_files(hist: History, tmp_path: Path) -> None:
    for n in range(45):
        store(hist, doc(f"h{n:02d}", f"m{n}", NOW - DAY, software=0))
    docs = build_all(hist, since=NOW - 2 * DAY)
    one = write_documents(docs, tmp_path / "one", hygiene(), workers=1).files
    two = write_documents(docs, tmp_path / "two", hygiene(), workers=2).files
    assert one == two and len([n for n in one if n.endswith(".html")]) == 47
    for name in one:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
