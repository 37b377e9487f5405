"""Plain host names are accepted without compiling Ansible's full address grammar (a
millisecond of every start-up), and the shortcut never accepts what the grammar refuses."""

from __future__ import annotations

import itertools
import re

import pytest

from upkeeper.inventory import patterns
from upkeeper.inventory.patterns import parse_address, split_host_pattern


def test_plain_names_do_not_compile_the_full_grammar() -> None:
    patterns._address_pattern.cache_clear()
    assert split_host_pattern("all") == ["all"]
    for text in ("node0001", "web-01.example.com", "db_7", "10.0.0.1", "host:2222"):
        parse_address(text, allow_ranges=True)
    assert patterns._address_pattern.cache_info().currsize == 0


def _by_grammar(text: str) -> bool:
    return any(re.compile(*args).match(text) for args in (
        (patterns._IPV4, re.I), (patterns._HOSTNAME, re.I | re.UNICODE),
        (patterns._IPV6, re.X | re.I)))


# Every string of up to four characters over an alphabet with the separators that matter.
_ALPHABET = "a0.-_:[]é \n"
_TEXTS = ["".join(t) for n in range(1, 5) for t in itertools.product(_ALPHABET, repeat=n)]


def _parsed(text: str) -> tuple[str, int | None] | None:
    try:
        return parse_address(text, allow_ranges=True)
    except ValueError:
        return None


@pytest.mark.parametrize("chunk", range(8))
def test_the_shortcut_agrees_with_the_grammar(chunk: int, monkeypatch) -> None:
    texts = _TEXTS[chunk::8]
    for text in texts:
        if patterns._PLAIN_ADDRESS.fullmatch(text):
            assert _by_grammar(text), text
    with_shortcut = [_parsed(t) for t in texts]
    monkeypatch.setattr(patterns, "_PLAIN_ADDRESS", re.compile(r"(?!)"))
    assert [_parsed(t) for t in texts] == with_shortcut
