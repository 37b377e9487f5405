"""Subscripts as Ansible's InventoryManager._apply_subscript evaluates them.

Ansible tests the truth of the range's end, so ``[1:0]`` selects the single host 1
(not an empty slice), and a reversed range with a non-zero end is empty.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from upkeeper.inventory.loader import load_inventory
from upkeeper.inventory.patterns import InventoryError

DATA = Path(__file__).resolve().parent.parent / "data" / "inventories"


@pytest.fixture(scope="module")
def web() -> tuple[object, list[str]]:
    inv = load_inventory([DATA / "patterns.ini"])
    return inv, [h.name for h in inv.select("webservers")]


@pytest.mark.parametrize(("subscript", "expect"), [
    ("[1:0]", lambda w: [w[1]]),       # end 0 is falsy in Ansible: a single index
    ("[0:0]", lambda w: [w[0]]),
    ("[2:1]", lambda w: []),           # reversed with a true end: hosts[2:2]
    ("[1:]", lambda w: w[1:]),
    ("[0:1]", lambda w: w[0:2]),
    ("[-1]", lambda w: [w[-1]]),
])
def test_subscripts_follow_ansible(web, subscript, expect) -> None:  # type: ignore[no-untyped-def]
    inv, hosts = web
    assert len(hosts) >= 3
    assert [h.name for h in inv.select(f"webservers{subscript}")] == expect(hosts)


def test_single_index_past_the_end_is_an_error(web) -> None:  # type: ignore[no-untyped-def]
    inv, hosts = web
    with pytest.raises(InventoryError, match="no hosts matched the subscripted"):
        inv.select(f"webservers[{len(hosts)}:0]")
