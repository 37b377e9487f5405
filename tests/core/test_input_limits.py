"""Hostile input: alias bombs, deep nesting, huge or endless files, host-range bombs and
duplicate keys get a one-line error naming the file (exit 3), never a hang, a traceback or
gigabytes of memory. The commands run as real processes under a memory cap and a timeout,
so that a regression fails the test instead of taking the machine down."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from upkeeper.inventory.loader import load_inventory
from upkeeper.inventory.patterns import InventoryError
from upkeeper.yamlsource import MAX_FILE_BYTES, SourceError, load_yaml

ROOT = Path(__file__).resolve().parents[2]
DAILY = str(ROOT / "playbooks" / "daily-health.yml")
MEMORY_CAP = 1536 * 1024 * 1024

LAUGHS = "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
    for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)
ALIAS_BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def upk(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", "upkeeper", *args], capture_output=True,
                              text=True, timeout=timeout, cwd=ROOT, preexec_fn=_cap_memory)
    except subprocess.TimeoutExpired:
        pytest.fail(f"upkeeper {' '.join(args)} hung")


def assert_one_line_error(res: subprocess.CompletedProcess[str], path: object,
                          needle: str) -> None:
    assert res.returncode == 3, res.stderr[-2000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith(f"upkeeper: error: {path}")
    assert needle in lines[0]


def test_alias_bomb_in_a_playbook(tmp_path):
    book = tmp_path / "bomb.yml"
    book.write_text("name: bomb\nchecks: [system.uptime]\n" + ALIAS_BOMB)
    assert len(book.read_bytes()) < 1000
    assert_one_line_error(upk("validate", str(book)), book, "alias")


def test_alias_bomb_in_an_inventory_and_in_group_vars(tmp_path):
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  vars:\n" + "".join(f"    {line}\n"
                                              for line in ALIAS_BOMB.splitlines()))
    assert_one_line_error(upk("inventory", "list", "-i", str(inv)), inv, "alias")
    (tmp_path / "hosts.ini").write_text("web1\n")
    (tmp_path / "group_vars").mkdir()
    bomb = tmp_path / "group_vars" / "all.yml"
    bomb.write_text(ALIAS_BOMB)
    assert_one_line_error(upk("run", DAILY, "-i", str(tmp_path / "hosts.ini")), bomb, "alias")


def test_recursive_alias_is_refused(tmp_path):
    book = tmp_path / "loop.yml"
    book.write_text("name: loop\nchecks: [system.uptime]\nvars: &v {again: *v}\n")
    assert_one_line_error(upk("validate", str(book)), book, "refers to its own anchor")


@pytest.mark.parametrize("name", ["deep.yml", "deep.json"])
def test_deep_nesting_is_an_error_not_a_traceback(tmp_path, name):
    path = tmp_path / name
    path.write_text('{"all": {"vars": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}}")
    res = upk("inventory", "list", "-i", str(path))
    assert "Traceback" not in res.stderr
    assert_one_line_error(res, path, "nest")
    book = tmp_path / "deep-book.yml"
    book.write_text("name: x\nchecks: [system.uptime]\nvars: {x: " + "[" * 70 + "]" * 70 + "}\n")
    assert_one_line_error(upk("validate", str(book)), book, "nested more than")


def test_deep_ini_value_is_refused(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("web1 x=" + "[" * 200 + "]" * 200 + "\n")
    assert_one_line_error(upk("inventory", "list", "-i", str(inv)), f"{inv}:1", "nested")


def test_devices_fifos_and_directories_are_not_read(tmp_path):
    assert_one_line_error(upk("run", DAILY, "-i", "/dev/zero"), "/dev/zero",
                          "not a regular file")
    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    assert_one_line_error(upk("run", DAILY, "-i", str(fifo)), fifo, "not a regular file")
    assert_one_line_error(upk("validate", str(fifo)), fifo, "not a regular file")
    assert_one_line_error(upk("inventory", "list", "-i", "localhost,", "--limit",
                              "@/dev/zero"), "cannot read limit file", "not a regular file")


def test_files_over_the_size_limit_are_refused_before_reading(tmp_path):
    big = tmp_path / "big.yml"
    with big.open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    assert_one_line_error(upk("inventory", "list", "-i", str(big)), big, "bytes")
    assert_one_line_error(upk("validate", str(big)), big, "bytes")


def test_host_range_bomb(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("[web]\nh[0:99999][0:99999]\n")
    assert_one_line_error(upk("inventory", "list", "-i", str(inv)), f"{inv}:2",
                          "more than 100000 hosts")
    yml = tmp_path / "inv.yml"
    yml.write_text("all:\n  hosts:\n    'a[0:999]b[0:999]': {}\n")
    assert_one_line_error(upk("inventory", "list", "-i", str(yml)), f"{yml}:3",
                          "more than 100000 hosts")


def test_too_many_hosts_in_one_inventory(tmp_path):
    inv = tmp_path / "inv.ini"
    inv.write_text("".join(f"[g{i}]\nh{i}-[0:50000]\n" for i in range(3)))
    with pytest.raises(InventoryError, match=r"inv\.ini:4: more than 100000 hosts"):
        load_inventory([inv])


def test_duplicate_keys_in_a_playbook_are_an_error_with_file_and_line(tmp_path):
    book = tmp_path / "dup.yml"
    book.write_text("name: first\nchecks:\n  - check: system.uptime\n"
                    "    params: {max_days: 1}\n    params: {max_days: 2}\nname: second\n")
    res = upk("validate", str(book))
    assert_one_line_error(res, f"{book}:5:5", "duplicate key 'params' (first at line 4)")


def test_duplicate_keys_in_inventories_warn_with_file_and_line(tmp_path):
    yml = tmp_path / "inv.yml"
    yml.write_text("all:\n  hosts:\n    web1:\n      port: 1\n      port: 2\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "web1.yml").write_text("a: 1\nb: 2\na: 3\n")
    inv = load_inventory([yml])
    assert inv.hosts["web1"].vars["port"] == 2  # the later value, as in Ansible
    assert inv.hosts["web1"].vars["a"] == 3
    assert any(w.startswith(f"{yml}:5: duplicate key 'port'") for w in inv.warnings)
    assert any(w.startswith(f"{tmp_path}/host_vars/web1.yml:3: duplicate key 'a'")
               for w in inv.warnings)
    as_json = tmp_path / "list.json"
    as_json.write_text('{"web": {"hosts": ["w1"]}, "web": {"hosts": ["w2"]}, "_meta": {}}')
    inv = load_inventory([as_json])
    assert "w2" in inv.hosts and any("duplicate key 'web'" in w for w in inv.warnings)


def test_one_loader_one_error_type(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("all:\n  hosts: [\n")
    with pytest.raises(SourceError) as exc:
        load_inventory([bad])
    assert isinstance(exc.value, InventoryError)
    with pytest.raises(SourceError, match=r"bad\.yml:3:1: invalid YAML"):
        load_yaml(bad)
    yamlfile = (ROOT / "core/upkeeper/inventory/yamlfile.py").read_text()
    assert "SafeLoader" not in yamlfile and "yaml.compose" not in yamlfile


def test_valid_anchors_and_merge_keys_still_load(tmp_path):
    src = tmp_path / "ok.yml"
    src.write_text("base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n"
                   "list: [*base, *base]\n")
    doc = load_yaml(src)
    assert doc.data["derived"] == {"a": 1, "b": 3}
    assert doc.data["list"] == [{"a": 1, "b": 2}] * 2
    assert doc.line_of(("derived", "b")) == 4
    assert json.dumps(doc.data)
