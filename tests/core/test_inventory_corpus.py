"""Our loader against the real `ansible-inventory --list` output of every corpus inventory.

The corpus lives beside the clone (../shared/corpus); without it these tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.corpus import CORPUS
from upkeeper.inventory.loader import load_inventory
from upkeeper.inventory.patterns import InventoryError

pytestmark = pytest.mark.corpus
INVENTORIES = CORPUS / "ansible_inventory"
EXPECTED = INVENTORIES / "_expected_ansible-inventory"

#: Sources Ansible warned about: the line we refuse them at, and why.
REFUSED = {
    "ansible_docs_intro_inventory/block05_rstline188.yaml": (1, "invalid YAML"),
    "ansible_docs_intro_inventory/block07_rstline206.yaml": (1, "invalid YAML"),
    "ansible_docs_intro_inventory/block18_rstline352.yaml": (1, "invalid YAML"),
    "ansible_docs_intro_inventory/block21_rstline419.ini":
        (21, "unknown group 'northeast' in [usa:children]"),
    "public_windows_snippets/aap_inventory_variables_winrm_inline_comments.yml":
        (1, "not a YAML inventory: 'ansible_connection' is not a group"),
}
#: Ansible warned but loaded it; the warning is about a group name that is not a valid
#: variable name (``local-``), which is legal, so we load it too (and note it in
#: Inventory.warnings) rather than refuse an inventory Ansible runs.
ACCEPTED_WITH_WARNING = {"ansible_core_tests/invalid_group_name_dash.ini"}


def _cases() -> list[tuple[str, Path]]:
    if not EXPECTED.is_dir():
        return []
    sources = {str(p.relative_to(INVENTORIES)).replace("/", "_"): p
               for p in INVENTORIES.rglob("*") if p.is_file() and EXPECTED not in p.parents}
    cases = []
    for expected in sorted(EXPECTED.glob("*.list.json")):
        stem = expected.name[: -len(".list.json")]
        cases.append((stem, sources[stem]))
    return cases


CASES = _cases()


def _require_corpus() -> None:
    if not EXPECTED.is_dir():
        pytest.skip("../shared/corpus/ansible_inventory is not present")


def _rel(source: Path) -> str:
    return str(source.relative_to(INVENTORIES))


@pytest.mark.parametrize("stem,source", [c for c in CASES if _rel(c[1]) not in REFUSED],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_corpus_matches_ansible_inventory(stem: str, source: Path) -> None:
    _require_corpus()
    warned = (EXPECTED / f"{stem}.stderr.txt").exists()
    assert not warned or _rel(source) in ACCEPTED_WITH_WARNING, "unexpected Ansible warning"
    want = json.loads((EXPECTED / f"{stem}.list.json").read_text())
    inv = load_inventory([source])
    got = json.loads(json.dumps(inv.to_ansible_list(), sort_keys=True))
    assert got == want
    if warned:
        assert any("group name 'local-'" in w for w in inv.warnings)


@pytest.mark.parametrize("rel", sorted(REFUSED))
def test_corpus_sources_ansible_warns_about_are_refused(rel: str) -> None:
    _require_corpus()
    source = INVENTORIES / rel
    stem = rel.replace("/", "_")
    assert (EXPECTED / f"{stem}.stderr.txt").exists()
    line, reason = REFUSED[rel]
    with pytest.raises(InventoryError) as exc:
        load_inventory([source])
    assert exc.value.path == str(source) and exc.value.line == line
    assert reason in str(exc.value)


def test_every_warned_corpus_source_is_accounted_for() -> None:
    _require_corpus()
    warned = {_rel(src) for stem, src in CASES if (EXPECTED / f"{stem}.stderr.txt").exists()}
    assert warned == set(REFUSED) | ACCEPTED_WITH_WARNING
    assert len(CASES) >= 45


def test_corpus_directory_loads_as_one_source() -> None:
    _require_corpus()
    # Ansible itself would skip the broken docs fragments with a warning; we refuse.
    with pytest.raises(InventoryError):
        load_inventory([INVENTORIES / "ansible_docs_intro_inventory"])
    inv = load_inventory([INVENTORIES / "public_windows_snippets" / "hyperv_kerberos_hosts.ini",
                          INVENTORIES / "kubespray_local_hosts.ini"])
    assert "node1" in inv.hosts and len(inv.hosts) > 1


def test_ansible_json_text_is_byte_identical() -> None:
    _require_corpus()
    for stem, source in CASES:
        if _rel(source) in REFUSED:
            continue
        want = (EXPECTED / f"{stem}.list.json").read_text(encoding="utf-8")
        assert load_inventory([source]).to_ansible_json() == want.rstrip("\n"), stem
