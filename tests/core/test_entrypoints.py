"""upkeeper.entrypoints reads entry points as importlib.metadata does (without importing
it): the same answer on this interpreter's real sys.path, and the packaging rules on
hand-made distributions."""

from __future__ import annotations

import importlib.metadata as md
import sys
import zipfile
from pathlib import Path

import pytest

from upkeeper import entrypoints


def _dist(site: Path, dirname: str, entry_points: str, meta: str = "") -> Path:
    d = site / dirname
    d.mkdir(parents=True)
    (d / "entry_points.txt").write_text(entry_points)
    if meta:
        (d / ("PKG-INFO" if dirname.endswith(".egg-info") else "METADATA")).write_text(meta)
    return d


@pytest.mark.parametrize("group", ["upkeeper", "console_scripts", "pytest11"])
def test_same_entry_points_as_importlib_metadata_on_the_real_path(group):
    ours = {(e.name, e.value) for e in entrypoints.entry_points(group)}
    theirs = {(e.name, e.value) for e in md.entry_points(group=group)}
    assert ours == theirs
    assert group != "upkeeper" or {"system", "ssh", "disk"} <= {n for n, _ in ours}


def test_distribution_name_and_version_come_from_the_metadata_headers():
    (ep,) = [e for e in entrypoints.entry_points("upkeeper") if e.name == "system"]
    assert entrypoints.distribution(ep) == (md.metadata("upkeeper")["Name"],
                                            md.version("upkeeper"))


def test_group_parsing_and_first_distribution_on_the_path_wins(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    _dist(first, "Acme_Tools-2.0.dist-info",
          "# comment\n[console_scripts]\nacme = acme.cli:main\n\n"
          "[upkeeper]\n  acme = acme.plugin:hooks [extra]\n; note\nother=acme.other\n",
          "Metadata-Version: 2.1\nName: Acme.Tools\nVersion: 2.0\n\nName: not-a-header\n")
    _dist(second, "acme_tools-1.0.dist-info", "[upkeeper]\nold = acme_old\n")
    _dist(second, "legacy-0.3-py3.11.egg-info", "[upkeeper]\nlegacy = legacy_mod\n",
          "Metadata-Version: 1.0\nName: legacy\nVersion: 0.3\n")
    _dist(second, "nothing-1.0.dist-info", "[pydantic]\nx = y\n")
    found = entrypoints.entry_points("upkeeper", [str(first), str(second),
                                                  str(tmp_path / "missing")])
    assert [(e.name, e.value) for e in found] == [
        ("acme", "acme.plugin:hooks [extra]"), ("other", "acme.other"),
        ("legacy", "legacy_mod")]
    assert entrypoints.distribution(found[0]) == ("Acme.Tools", "2.0")
    assert entrypoints.distribution(found[2]) == ("legacy", "0.3")


def test_load_imports_the_module_and_follows_the_attribute(tmp_path, monkeypatch):
    (tmp_path / "ep_target_mod.py").write_text("class Hooks:\n    class Inner:\n        x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = entrypoints.EntryPoint("t", "ep_target_mod:Hooks.Inner [extra]", "upkeeper")
    assert ep.load().x == 1
    assert entrypoints.EntryPoint("m", "ep_target_mod", "upkeeper").load() is \
        sys.modules["ep_target_mod"]


def test_a_zip_on_the_path_is_left_to_importlib_metadata(tmp_path, monkeypatch):
    egg = tmp_path / "zipped.egg"
    with zipfile.ZipFile(egg, "w") as zf:
        zf.writestr("EGG-INFO/entry_points.txt", "[upkeeper]\nzipped = zipped_mod\n")
        zf.writestr("EGG-INFO/PKG-INFO", "Metadata-Version: 1.0\nName: zipped\nVersion: 9\n")
        zf.writestr("zipped_mod.py", "")
    monkeypatch.syspath_prepend(str(egg))
    found = {e.name: e for e in entrypoints.entry_points("upkeeper")}
    assert "zipped" in found and "system" in found
    assert entrypoints.distribution(found["zipped"]) == ("zipped", "9")


def test_plugins_name_each_distribution_when_importlib_metadata_answers(tmp_path,
                                                                        monkeypatch):
    """With an egg on the path (importlib.metadata's lookup), each plugin still reports
    its own distribution and version, not the first one seen."""
    from upkeeper.plugins import get_plugin_manager

    egg = tmp_path / "zipped.egg"
    with zipfile.ZipFile(egg, "w") as zf:
        zf.writestr("EGG-INFO/entry_points.txt", "[upkeeper]\nzipped = zipped_mod\n")
        zf.writestr("EGG-INFO/PKG-INFO", "Metadata-Version: 1.0\nName: zipped\nVersion: 9\n")
        zf.writestr("zipped_mod.py", "")
    monkeypatch.syspath_prepend(str(egg))
    infos = {i.name: i for i in get_plugin_manager().plugins}
    assert (infos["zipped"].distribution, infos["zipped"].version) == ("zipped", "9")
    assert (infos["system"].distribution, infos["system"].version) == (
        md.metadata("upkeeper")["Name"], md.version("upkeeper"))


def test_a_distribution_with_undecodable_metadata_does_not_stop_the_lookup(tmp_path):
    site = tmp_path / "site"
    bad = _dist(site, "broken-1.0.dist-info", "")
    (bad / "entry_points.txt").write_bytes(b"[upkeeper]\nbroken = broken_mod\n\xff\xfe = x\n")
    (bad / "METADATA").write_bytes(b"Metadata-Version: 2.1\nName: broken\xff\nVersion: 1.0\n")
    _dist(site, "good-2.0.dist-info", "[upkeeper]\ngood = good_mod\n",
          "Metadata-Version: 2.1\nName: good\nVersion: 2.0\n")
    found = {e.name: e for e in entrypoints.entry_points("upkeeper", [str(site)])}
    assert found["broken"].value == "broken_mod" and found["good"].value == "good_mod"
    assert entrypoints.distribution(found["broken"])[1] == "1.0"
    assert entrypoints.distribution(found["good"]) == ("good", "2.0")
