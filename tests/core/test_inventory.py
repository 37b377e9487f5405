"""Inventory loading: our own fixtures against what the real ansible-inventory printed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from upkeeper.inventory.loader import Group, Inventory, load_inventory, local_inventory
from upkeeper.inventory.patterns import InventoryError
from upkeeper.inventory.yamlfile import UnsafeText, VaultedValue

DATA = Path(__file__).resolve().parent.parent / "data" / "inventories"

# tests/data/inventories/expected/*.json were printed by ansible-core 2.19.14's
# `ansible-inventory -i SOURCE... --list [--limit P]` for the fixtures beside them.
CAPTURED = {
    "features.ini": (["features.ini"], None),
    "features.yml": (["features.yml"], None),
    "precedence": (["precedence/hosts"], None),
    "dirsource": (["dirsource"], None),
    "multi": (["multi/linux.ini", "multi/windows.yml", "multi/more.ini"], None),
    "features.ini.limit": (["features.ini"], "app:&db*:!db-b*"),
    "precedence.limit": (["precedence/hosts"], "h1"),
}


def load(*names: str) -> Inventory:
    return load_inventory([DATA / n for n in names])


def listed(inv: Inventory, limit: str | None = None) -> Any:
    """Round-trip through JSON as the CLI prints it (tuples/ints as JSON has them)."""
    return json.loads(json.dumps(inv.to_ansible_list(limit), sort_keys=True))


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_matches_real_ansible_inventory(name: str) -> None:
    sources, limit = CAPTURED[name]
    want = json.loads((DATA / "expected" / f"{name}.json").read_text())
    assert listed(load(*sources), limit) == want


def test_ini_features() -> None:
    inv = load("features.ini")
    web = inv.groups["web"]
    assert isinstance(web, Group)
    assert web.hosts == ["web01.example.net", "web02.example.net", "web03.example.net",
                         "web-canary.example.net"]
    assert inv.groups["app"].children == ["web", "db", "staging"]
    assert inv.groups["odd"].hosts[:6] == ["node1", "node5", "node9", "node08", "node09",
                                           "node10"]
    canary = inv.hosts["web-canary.example.net"].vars
    # inline host vars are literal_eval'd; :vars values too, a trailing comment survives
    # only where literal_eval fails (as in Ansible)
    assert canary["canary"] is True and canary["weight"] == 1.5
    assert canary["http_port"] == 8081 and canary["label"] == "front end"
    assert canary["enabled"] is True and canary["plain"] == "FALSE"
    assert canary["proxy"].startswith("squid.example.net   # a comment")
    assert canary["limits"] == {"nofile": 65536, "nproc": [1, 2]}
    assert inv.hosts["web01.example.net"].vars["http_port"] == 8080
    dbz = inv.hosts["db-z.example.net"].vars
    assert dbz["ansible_port"] == 5433
    assert dbz["opts"] == {"max_conn": 200, "ssl": True}
    assert dbz["pg_tags"] == ["pg", "primary"]
    assert dbz["http_port"] == 80  # all:vars, as db is not under web
    odd = inv.hosts["192.0.2.7"].vars
    assert odd["pw"] == "a#b c" and odd["nothing"] is None and odd["ansible_port"] == 2201
    assert inv.hosts["2001:db8::11"].vars["ansible_port"] == 2022
    assert "2001:db8::10" in inv.hosts
    assert inv.groups["ungrouped"].hosts == ["bastion.example.net", "jump01"]
    assert inv.hosts["jump01"].vars["ansible_port"] == 2222
    assert inv.groups["app"].priority == 5
    assert "ansible_group_priority" not in inv.groups["app"].vars


def test_host_model_groups_and_connection() -> None:
    inv = load("features.ini")
    stage = inv.hosts["stage1"]
    assert stage.groups == ["all", "app", "staging"]
    assert stage.connection == "local"
    web = inv.hosts["web01.example.net"]
    assert web.groups[0] == "all" and set(web.groups) == {"all", "app", "web"}
    assert web.address == "web01.example.net"


def test_yaml_features() -> None:
    inv = load("features.yml")
    assert inv.groups["app"].children == ["web", "db", "linux"]
    assert inv.groups["db"].hosts == ["db01.example.net"]  # `hosts: name` string form
    assert inv.hosts["jump01"].vars["ansible_port"] == 2222
    v6 = inv.hosts["2001:db8::20"]
    assert v6.vars["ansible_port"] == 2022 and v6.vars["ansible_user"] == "root"
    canary = inv.hosts["web-canary.example.net"].vars
    assert isinstance(canary["raw"], UnsafeText)
    assert canary["nested"] == {"a": {"b": [1, 2]}, "c": None}
    assert inv.hosts["mgmt.example.net"].address == "192.0.2.10"
    # declared under ungrouped first, then hosts of `all` that joined no group
    assert inv.groups["ungrouped"].hosts == ["lonely.example.net", "mgmt.example.net", "jump01"]


def test_precedence_all_parent_child_host_and_files() -> None:
    inv = load("precedence/hosts")
    h1, h2, h3 = (inv.hosts[n].vars for n in ("h1", "h2", "h3"))
    assert h1["level"] == "host-file"  # host_vars/h1.json beats the inline host var
    assert h1["from_host_inline"] == "inline"
    assert h2["level"] == "child-file-10"  # group_vars/child/ beats every inline var
    assert h2["list_var"] == [3]  # files in a group_vars dir merge in sorted order
    assert h3["level"] == "h3-file"  # extension-less host_vars file
    assert h1["overridden_by_all_file"] == "all-file"
    assert h1["parent_only"] == "p" and h1["gp"] == 1
    assert "parent_only" not in h3


def test_inline_group_precedence_without_files(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text(
        "[child]\nh1\nh2 v=host\n[parent:children]\nchild\n[gp:children]\nparent\n"
        "[all:vars]\nv=all\n[gp:vars]\nv=gp\n[parent:vars]\nv=parent\n[child:vars]\nv=child\n"
        "[other]\nh1\n[other:vars]\nv=other\n")
    inv = load_inventory([tmp_path / "inv.ini"])
    # other (depth 1) is shallower than child (depth 3): child wins although later
    assert inv.hosts["h1"].vars["v"] == "child"
    assert inv.hosts["h2"].vars["v"] == "host"


def test_group_priority_breaks_ties(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "a:\n  hosts: {h: }\n  vars: {v: a, ansible_group_priority: 9}\n"
        "b:\n  hosts: {h: }\n  vars: {v: b}\n")
    assert load_inventory([tmp_path / "inv.yml"]).hosts["h"].vars["v"] == "a"


def test_multiple_sources_merge_in_order() -> None:
    inv = load("multi/linux.ini", "multi/windows.yml", "multi/more.ini")
    assert inv.hosts["lin2"].vars["ansible_port"] == 2200  # later source wins
    assert inv.groups["patch_tuesday"].children == ["windows", "servers"]
    assert [h.name for h in inv.select("patch_tuesday")] == ["win1", "lin1", "lin2"]
    assert inv.hosts["win1"].connection == "winrm"  # its OS family comes from the transport


def test_directory_source_skips_ignored_files() -> None:
    inv = load("dirsource")
    assert set(inv.hosts) == {"l1", "l2", "l3", "w1"}
    assert inv.hosts["w1"].vars["ansible_connection"] == "winrm"
    assert inv.hosts["l3"].vars["os"] == "linux"


def test_host_list_source_and_extra_sources() -> None:
    inv = load_inventory(["web1,web2:2222,"])
    assert list(inv.hosts) == ["web1", "web2"]
    assert inv.hosts["web2"].vars["ansible_port"] == 2222

    class PSA:
        name = "psa"

        def matches(self, source: str) -> bool:
            return source.startswith("psa:")

        def load(self, source: str) -> dict[str, Any]:
            return {"client_acme": {"hosts": ["fs01"], "vars": {"client": "acme"}},
                    "all": {"children": ["client_acme"]},
                    "_meta": {"hostvars": {"fs01": {"ansible_host": "192.0.2.5"}}}}

    inv = load_inventory(["psa:acme", DATA / "multi" / "linux.ini"], extra_sources=[PSA()])
    fs01 = inv.hosts["fs01"]
    assert fs01.vars == {"client": "acme", "ansible_host": "192.0.2.5"}
    assert set(inv.hosts) == {"fs01", "lin1", "lin2"}


def test_extra_source_failure_names_the_source() -> None:
    class Broken:
        name = "broken"

        def matches(self, source: str) -> bool:
            return True

        def load(self, source: str) -> dict[str, Any]:
            raise RuntimeError("API down")

    with pytest.raises(InventoryError, match="psa:x: inventory source broken failed: API down"):
        load_inventory(["psa:x"], extra_sources=[Broken()])


def test_local_inventory() -> None:
    inv = local_inventory()
    assert list(inv.hosts) == ["localhost"]
    host = inv.hosts["localhost"]
    assert host.vars == {"ansible_connection": "local"} and host.connection == "local"
    assert host.groups == ["all", "ungrouped"]
    assert inv.to_ansible_list()["ungrouped"] == {"hosts": ["localhost"]}


def test_implicit_localhost_like_ansible() -> None:
    inv = load("multi/linux.ini")
    hosts = inv.select("localhost")
    assert [h.name for h in hosts] == ["localhost"]
    assert hosts[0].connection == "local"
    assert "localhost" not in inv.hosts and inv.select("all")[0].name == "lin1"


def test_vault_and_json_values(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text(
        "all:\n  hosts:\n    h:\n      secret: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n"
        "          3133\n      when: 2024-01-02\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.json").write_text('{"big": 1e3}')
    inv = load_inventory([tmp_path / "inv.yml"])
    secret = inv.hosts["h"].vars["secret"]
    assert isinstance(secret, VaultedValue) and "3133" not in repr(secret)
    assert inv.hosts["h"].vars["big"] == 1000.0  # JSON first, as Ansible's loader
    shown = listed(inv)["_meta"]["hostvars"]["h"]
    assert shown["secret"] == {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3133\n"}
    assert shown["when"] == "2024-01-02"


def test_warnings_for_unused_vars_files_and_odd_group_names(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web-servers]\nw1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "webservers.yml").write_text("x: 1\n")
    inv = load_inventory([tmp_path / "inv.ini"])
    assert any("webservers" in w and "ignored" in w for w in inv.warnings)
    assert any("inv.ini:1: group name 'web-servers'" in w for w in inv.warnings)


ERRORS = {
    "unknown_child.ini": (6, "unknown group 'missing_group' in [app:children]"),
    "bad_yaml.yml": (5, "expected ',' or ']'"),
    "not_inventory.yml": (1, "'ansible_connection' is not a group"),
    "broken_line.ini": (3, "No closing quotation"),
    "bad_range.ini": (2, "equal-length begin and end"),
    "bad_hostvar.ini": (2, "expected key=value host variable, got 'key_without_value'"),
    "vars_undefined.ini": (1, "[web:vars] for group 'web', which is never defined"),
    "loop.ini": (4, "dependency loop"),
    "unknown_key.yml": (4, "unexpected key 'host' in group 'web'"),
    "plugin_config.yml": (1, "inventory plugin configuration (plugin: amazon.aws.aws_ec2)"),
    "bad_section.ini": (1, "unknown type 'meta'"),
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_errors_name_file_and_line(name: str) -> None:
    line, text = ERRORS[name]
    path = DATA / "errors" / name
    with pytest.raises(InventoryError) as exc:
        load_inventory([path])
    assert exc.value.path == str(path)
    assert exc.value.line == line
    assert str(exc.value).startswith(f"{path}:{line}: ")
    assert text in str(exc.value)


def test_bad_vars_file_and_missing_source(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("w1\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w1.yml").write_text("a: 1\nb: [\n")
    with pytest.raises(InventoryError, match=r"host_vars/w1\.yml:\d+: invalid YAML"):
        load_inventory([tmp_path / "inv.ini"])
    (tmp_path / "host_vars" / "w1.yml").write_text("- a\n")
    with pytest.raises(InventoryError, match=r"w1\.yml:1: a vars file must be a mapping"):
        load_inventory([tmp_path / "inv.ini"])
    with pytest.raises(InventoryError, match="no such inventory file"):
        load_inventory([tmp_path / "nope.ini"])


def test_extensionless_yaml_error_is_reported_as_yaml(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text("all:\n  hosts:\n    a: [1\n")
    with pytest.raises(InventoryError, match=r"hosts:\d+: invalid YAML"):
        load_inventory([tmp_path / "hosts"])
    (tmp_path / "hosts").write_text("[web]\nw1 x=1\n")
    assert load_inventory([tmp_path / "hosts"]).hosts["w1"].vars == {"x": 1}


def test_huge_range_is_refused(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nweb[1:10000000]\n")
    with pytest.raises(InventoryError, match=r"inv\.ini:2: .*more than"):
        load_inventory([tmp_path / "inv.ini"])


@pytest.mark.parametrize("path", ["inventories/local.yml", "inventories/msp-example",
                                  "inventories/msp-example/hosts.ini"])
def test_shipped_example_inventories_load(path: str) -> None:
    root = DATA.parent.parent.parent
    inv = load_inventory([root / path])
    assert inv.hosts and not inv.warnings


def test_msp_example_precedence_and_patterns() -> None:
    root = DATA.parent.parent.parent
    inv = load_inventory([root / "inventories" / "msp-example"])
    dc = inv.hosts["acme-dc01"]
    assert dc.connection == "winrm"
    assert dc.vars["ansible_password"] == "{{ env.ACME_WINRM_PASS }}"
    assert dc.vars["ansible_port"] == 5986 and dc.vars["ansible_user"] == "ACME\\svc-upkeeper"
    assert "ansible_password" not in inv.hosts["acme-web01"].vars  # Linux: SSH keys
    assert dc.vars["maintenance_windows"] == ["Sat 22:00-Sun 04:00"]
    assert inv.hosts["globex-db01"].vars["maintenance_windows"] == ["Sun 02:00-04:00"]
    assert inv.hosts["globex-db01"].vars["ansible_port"] == 2222
    assert [h.name for h in inv.select("client_acme:&linux:!acme-web02")] == [
        "acme-fs01", "acme-web01"]
    assert [h.name for h in inv.select("windows")] == ["acme-dc01", "globex-ts01"]


def test_saved_ansible_inventory_list_round_trips(tmp_path: Path) -> None:
    original = load("features.ini")
    saved = tmp_path / "saved.json"
    saved.write_text(original.to_ansible_json())
    again = load_inventory([saved])
    assert again.to_ansible_list() == original.to_ansible_list()
    assert again.hosts["db-z.example.net"].vars == original.hosts["db-z.example.net"].vars


def test_extra_source_hosts_as_mapping() -> None:
    class Rmm:
        def matches(self, source: str) -> bool:
            return source == "rmm:"

        def load(self, source: str) -> dict[str, Any]:
            return {"servers": {"hosts": {"s1": {"ansible_host": "192.0.2.9"}, "s2": None}}}

    inv = load_inventory(["rmm:"], extra_sources=[Rmm()])
    assert inv.hosts["s1"].address == "192.0.2.9" and inv.groups["servers"].hosts == ["s1", "s2"]


def test_vault_encrypted_vars_file_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[web]\nw1\n")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("$ANSIBLE_VAULT;1.1;AES256\n6162\n")
    with pytest.raises(InventoryError, match=r"web\.yml:1: the file is encrypted"):
        load_inventory([tmp_path / "inv.ini"])


def test_windows_editor_files_with_bom_and_crlf(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_bytes(b"\xef\xbb\xbf[web]\r\nw1 x=1\r\n")
    (tmp_path / "inv.yml").write_bytes(b"\xef\xbb\xbfdb:\r\n  hosts:\r\n    d1:\r\n")
    inv = load_inventory([tmp_path / "inv.ini", tmp_path / "inv.yml"])
    assert inv.groups["web"].hosts == ["w1"] and inv.groups["db"].hosts == ["d1"]


@pytest.mark.slow  # loads every plugin (paramiko, pywinrm) in-process
def test_cli_inventory_list_prints_the_ansible_document() -> None:
    from click.testing import CliRunner

    from upkeeper.cli.main import main

    result = CliRunner().invoke(main, [
        "inventory", "list", "-i", str(DATA / "features.ini"), "--limit", "app:&db*:!db-b*",
        "--format", "ansible-json"])
    assert result.exit_code == 0, result.output
    want = json.loads((DATA / "expected" / "features.ini.limit.json").read_text())
    assert json.loads(result.stdout) == want
