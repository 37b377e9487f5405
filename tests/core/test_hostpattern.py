"""Host patterns (`hosts:`, `--limit`), addresses and ranges, as Ansible evaluates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upkeeper.inventory.loader import load_inventory
from upkeeper.inventory.patterns import (
    HostPatternError,
    InventoryError,
    PatternMatcher,
    expand_hostname_range,
    order_patterns,
    parse_address,
    split_host_pattern,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "inventories"
# expected/patterns.json: `ansible PATTERN -i patterns.ini --list-hosts` (ansible-core
# 2.19.14) for each pattern, in the order Ansible printed the hosts.
CAPTURED = json.loads((DATA / "expected" / "patterns.json").read_text())


@pytest.fixture(scope="module")
def inv():  # type: ignore[no-untyped-def]
    return load_inventory([DATA / "patterns.ini"])


@pytest.mark.parametrize("pattern", sorted(CAPTURED))
def test_select_matches_ansible(inv, pattern: str) -> None:  # type: ignore[no-untyped-def]
    assert [h.name for h in inv.select(pattern)] == CAPTURED[pattern]


def test_select_none_is_all(inv) -> None:  # type: ignore[no-untyped-def]
    assert inv.select(None) == inv.select("all") == inv.select("*")
    assert {h.name for h in inv.select(None)} == set(inv.hosts)


def test_unmatched_parts_are_reported(inv) -> None:  # type: ignore[no-untyped-def]
    assert inv.unmatched("nosuch:linux:!nope*") == ["nosuch", "nope*"]
    assert inv.unmatched("linux") == []


def test_limit_file(inv, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    limit = tmp_path / "retry"
    limit.write_text("acme-db1\n\nglobex-web1\n")
    assert [h.name for h in inv.select(f"@{limit}")] == ["acme-db1", "globex-web1"]
    with pytest.raises(HostPatternError, match="cannot read limit file"):
        inv.select(f"@{tmp_path / 'missing'}")


def test_bad_regex_and_subscript_errors(inv) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HostPatternError, match="invalid host pattern '~web\\('"):
        inv.select("~web(")
    with pytest.raises(InventoryError, match="no hosts matched the subscripted"):
        inv.select("webservers[40]")


@pytest.mark.parametrize("pattern,parts", [
    ("a:b", ["a", "b"]),
    ("a,b , c", ["a", "b", "c"]),
    ("web:&linux:!db*", ["web", "&linux", "!db*"]),
    ("web[1:3]:db", ["web[1:3]", "db"]),
    ("2001:db8::1", ["2001:db8::1"]),
    ("[2001:db8::1]:22", ["[2001:db8::1]:22"]),
    ("web[1:2]", ["web[1:2]"]),
    ("host:22", ["host:22"]),
    ("", []),
])
def test_split_host_pattern(pattern: str, parts: list[str]) -> None:
    assert split_host_pattern(pattern) == parts


def test_order_patterns_applies_plain_then_and_then_not() -> None:
    assert order_patterns(["!a", "&b", "c", "d"]) == ["c", "d", "&b", "!a"]
    assert order_patterns(["!a"]) == ["all", "!a"]


@pytest.mark.parametrize("text,expected", [
    ("web1", ("web1", None)),
    ("web1:2222", ("web1", 2222)),
    ("192.0.2.1:22", ("192.0.2.1", 22)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("[2001:db8::1]:2022", ("2001:db8::1", 2022)),
    ("web[01:10].example.com:8022", ("web[01:10].example.com", 8022)),
])
def test_parse_address(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_address(text, allow_ranges=True) == expected


@pytest.mark.parametrize("text", ["web_", "a b", "web:", "web[1:3]"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


@pytest.mark.parametrize("line,hosts", [
    ("web[01:03]", ["web01", "web02", "web03"]),
    ("db-[a:c].x", ["db-a.x", "db-b.x", "db-c.x"]),
    ("n[1:10:4]", ["n1", "n5", "n9"]),
    ("n[a:g:3]", ["na", "nd", "ng"]),
    ("r[1:2]c[a:b]", ["r1ca", "r1cb", "r2ca", "r2cb"]),
    ("n[:2]", ["n0", "n1", "n2"]),
    ("plain", ["plain"]),
])
def test_expand_hostname_range(line: str, hosts: list[str]) -> None:
    assert expand_hostname_range(line) == hosts


@pytest.mark.parametrize("line,reason", [
    ("web[1]", "begin:end"),
    ("web[1:]", "end value"),
    ("web[01:100]", "equal-length"),
    ("web[c:a]", "begin <= end"),
    ("web[1:5:0]", "bad host range"),
    ("web[x:9]", "bad host range"),
])
def test_expand_hostname_range_errors(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        expand_hostname_range(line)


def test_matcher_on_plain_names() -> None:
    m = PatternMatcher({"all": ["a", "b", "c"], "ungrouped": ["c"], "g": ["a", "b"]},
                       ["a", "b", "c"])
    assert m.select("g:!b") == ["a"]
    assert m.select("ungrouped:g[1]") == ["c", "b"]
    assert m.select("localhost") == ["localhost"]  # the caller supplies an implicit host
    assert m.select(["g", "&~[bc]"]) == ["b"]


def test_localhost_aliases_resolve_to_the_inventory_localhost(tmp_path: Path) -> None:
    (tmp_path / "inv.ini").write_text("[g]\nlocalhost ansible_connection=local\nh1\n[x]\nx\n")
    inv = load_inventory([tmp_path / "inv.ini"])
    # as `ansible '127.0.0.1:localhost:h1' --list-hosts`: localhost once, then h1
    assert [h.name for h in inv.select("127.0.0.1:localhost:h1")] == ["localhost", "h1"]
    assert [h.name for h in inv.select("x")] == ["x"]  # the host, not the group
    assert any("'x' is both a group and a host" in w for w in inv.warnings)
