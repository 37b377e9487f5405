"""Ansible host syntax: inventory errors, host addresses and ``[1:9]`` ranges, and the host
patterns of ``hosts:`` and ``--limit`` (``a:b``, ``a,b``, ``a:&b``, ``a:!b``, globs, ``~regex``)."""

from __future__ import annotations

import fnmatch
import functools
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from upkeeper.yamlsource import SourceError

#: Characters that make a group name unusable as a Jinja variable (Ansible warns).
INVALID_GROUP_NAME = re.compile(r"^[\d\W]|[^\w]")
#: Names Ansible treats as this machine (an implicit ``localhost`` host matches them).
LOCALHOST = ("127.0.0.1", "localhost", "::1")


class InventoryError(SourceError):
    """Bad inventory input; ``str()`` is ``"file:line: reason"`` (line omitted when unknown)."""

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None) -> None:
        super().__init__(str(path) if path is not None else None, line, message)


class HostPatternError(InventoryError):
    """A host pattern (``hosts:`` or ``--limit``) that cannot be evaluated."""


# The address grammar below is Ansible's (parsing/utils/addresses.py), so that hosts,
# ports and ranges split exactly where ``ansible-inventory`` splits them.
_NUMERIC_RANGE = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_HEX_RANGE = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_V6 = rf"(?:[0-9a-f]{{1,4}}|{_HEX_RANGE})"
_V4 = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUMERIC_RANGE})"
_LABEL = rf"(?:[\w]|{_ALNUM_RANGE})(?:[\w_-]|{_ALNUM_RANGE})*(?<![_-])"

_BRACKETED_HOSTPORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOSTPORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_IPV4 = rf"^(?:{_V4}\.){{3}}{_V4}$"
_IPV6 = (
    rf"""^((?:{_V6}:){{7}}{_V6}|(?:{_V6}:){{1,6}}:|(?:{_V6}:)(?::{_V6}){{1,6}}|
    (?:{_V6}:){{2}}(?::{_V6}){{1,5}}|(?:{_V6}:){{3}}(?::{_V6}){{1,4}}|
    (?:{_V6}:){{4}}(?::{_V6}){{1,3}}|(?:{_V6}:){{5}}(?::{_V6}){{1,2}}|
    (?:{_V6}:){{6}}(?::{_V6})|:(?::{_V6}){{1,6}}|{_V6}?::|
    (?:0:){{6}}(?:{_V6}\.){{3}}{_V6}|::(?:ffff:)?(?:{_V6}\.){{3}}{_V6}|
    (?:0:){{5}}ffff:(?:{_V6}\.){{3}}{_V6})$"""
)
_HOSTNAME = rf"^{_LABEL}(?:\.{_LABEL})*$"
#: A name or IPv4 address in plain ASCII (``web-01.example.com``, ``node_7``,
#: ``10.0.0.1``): every text it matches is a valid hostname by the grammar above, which
#: takes a millisecond to compile (start-up pays it for ``hosts: all`` alone).
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9]+(?:[_-]+[A-Za-z0-9]+)*"
                            r"(?:\.[A-Za-z0-9]+(?:[_-]+[A-Za-z0-9]+)*)*")


@functools.cache
def _address_pattern(which: str) -> re.Pattern[str]:
    # Compiled on first use: the IPv6 grammar alone takes milliseconds to compile, which
    # every start-up would pay whether or not an inventory is read.
    if which == "ipv4":
        return re.compile(_IPV4, re.I)
    if which == "hostname":
        return re.compile(_HOSTNAME, re.I | re.UNICODE)
    return re.compile(_IPV6, re.X | re.I)


def parse_address(address: str, allow_ranges: bool = False) -> tuple[str, int | None]:
    """Split ``host``, ``host:port``, ``[v6]:port`` or ``v6`` into (host, port).

    :raises ValueError: when the text is not a host identifier (Ansible then uses the raw
        text as the host name, without a port).
    """
    port: int | None = None
    for pattern in (_BRACKETED_HOSTPORT, _HOSTPORT):
        m = pattern.match(address)
        if m:
            address, port = m.group(1), int(m.group(2))
    # Most addresses are IPv4 or names: the IPv6 grammar is compiled only for the rest.
    if not _PLAIN_ADDRESS.fullmatch(address) and not any(
            _address_pattern(p).match(address) for p in ("ipv4", "hostname", "ipv6")):
        raise ValueError(f"not a valid network hostname: {address}")
    if not allow_ranges and "[" in address:
        raise ValueError("range in host where ranges are not allowed")
    return address, port


def split_host_and_port(text: str) -> tuple[str, int | None]:
    """Ansible's reading of a host entry: a parseable ``host:port`` splits, anything else is
    taken whole as the name."""
    try:
        return parse_address(text, allow_ranges=True)
    except ValueError:
        return text, None


#: A typo like ``web[1:100000000]`` is refused instead of eating all memory.
MAX_RANGE_HOSTS = 100_000


class _RangeOrderError(ValueError):
    pass


class _TooManyHosts(ValueError):
    pass


def expand_hostname_range(line: str) -> list[str]:
    """Expand ``web[01:03]``, ``db-[a:c]``, ``n[1:9:2]`` (several ranges allowed).

    :raises ValueError: for a malformed range, with Ansible's reason, or one whose ranges
        together make more than :data:`MAX_RANGE_HOSTS` names (``h[0:99999][0:99999]``
        would be ten billion).
    """
    try:
        return _expand(line, MAX_RANGE_HOSTS)
    except _TooManyHosts:
        raise ValueError(f"{line!r} expands to more than {MAX_RANGE_HOSTS} hosts") from None


def _expand(line: str, limit: int) -> list[str]:
    if "[" not in line:
        return [line]
    parts = line.replace("[", "|", 1).replace("]", "|", 1).split("|")
    if len(parts) != 3:
        raise ValueError("unbalanced '[' in host range")
    head, nrange, tail = parts
    bounds = nrange.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError("host range must be begin:end or begin:end:step")
    beg, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError("host range must specify end value")
    width = 0
    if beg[0] == "0" and len(beg) > 1:
        width = len(beg)
        if width != len(end):
            raise ValueError("host range must specify equal-length begin and end formats")
    seq: Sequence[str | int]
    try:
        # str.index finds substrings too: Ansible's quirk, kept so ranges expand alike.
        try:
            i_beg = string.ascii_letters.index(beg)
            i_end = string.ascii_letters.index(end)
            if i_beg > i_end:
                raise _RangeOrderError("host range must have begin <= end")
            seq = list(string.ascii_letters[i_beg:i_end + 1:int(step_text)])
        except _RangeOrderError:
            raise
        except ValueError:
            seq = range(int(beg), int(end) + 1, int(step_text))
    except ValueError as exc:
        raise ValueError(f"bad host range [{nrange}]: {exc}") from None
    if len(seq) > limit:
        raise _TooManyHosts()
    hosts: list[str] = []
    for item in seq:
        text = str(item).zfill(width) if width else str(item)
        # Every item has the same tail, so the tail's ranges get an equal share.
        hosts.extend(_expand(head + text + tail, limit // len(seq)))
    return hosts


_SPLIT_COLONS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")


def split_host_pattern(pattern: str) -> list[str]:
    """``'a,b[1], c[2:3]'`` -> ``['a', 'b[1]', 'c[2:3]']``; ``:`` separates too unless
    the whole text is one address (IPv6, ``host:port``, a range)."""
    if "," in pattern:
        parts = pattern.split(",")
    else:
        try:
            parse_address(pattern, allow_ranges=True)
            parts = [pattern]
        except ValueError:
            parts = _SPLIT_COLONS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def order_patterns(patterns: Sequence[str]) -> list[str]:
    """Plain patterns first, then ``&`` intersections, then ``!`` exclusions, as Ansible
    applies them whatever order they were written in."""
    regular = [p for p in patterns if p and p[0] not in "&!"]
    intersect = [p for p in patterns if p and p[0] == "&"]
    exclude = [p for p in patterns if p and p[0] == "!"]
    return (regular or ["all"]) + intersect + exclude


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        if pattern.startswith("~"):
            return re.compile(pattern[1:])
        return re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise HostPatternError(f"invalid host pattern {pattern!r}: {exc}") from None


class PatternMatcher:
    """Evaluates host patterns against an inventory given as plain names.

    :param group_hosts: group name -> every host under it (children included), in order.
    :param hosts: every host name in inventory order.
    """

    def __init__(self, group_hosts: Mapping[str, Sequence[str]], hosts: Sequence[str]) -> None:
        self.group_hosts = group_hosts
        self.hosts = hosts
        self._host_set = set(hosts)
        self.unmatched: list[str] = []

    def select(self, pattern: str | Sequence[str],
               read_file: Callable[[str], list[str]] | None = None) -> list[str]:
        """Host names matching ``pattern``; names in :data:`LOCALHOST` may come back for an
        implicit localhost. ``@file`` items are read with ``read_file`` (one pattern a line).
        """
        items = split_host_pattern(pattern) if isinstance(pattern, str) else list(pattern)
        expanded: list[str] = []
        for item in items:
            if item.startswith("@") and read_file is not None:
                expanded.extend(line.strip() for line in read_file(item[1:]) if line.strip())
            else:
                expanded.append(item)
        result: list[str] = []
        for p in order_patterns(expanded):
            if p in self._host_set:
                result.append(p)
                continue
            that = self._match_one(p)
            if p[0] == "!":
                drop = set(that)
                result = [h for h in result if h not in drop]
            elif p[0] == "&":
                keep = set(that)
                result = [h for h in result if h in keep]
            else:
                result.extend(that)
        return list(dict.fromkeys(result))

    def _match_one(self, pattern: str) -> list[str]:
        if pattern[0] in "&!":
            pattern = pattern[1:]
        if not pattern:
            return []
        expr, subscript = _split_subscript(pattern)
        found = self._enumerate(expr)
        if not found or subscript is None:
            return found
        start, end = subscript
        if not end:  # Ansible tests the end's truth: web[1:0] is web[1], as is web[1]
            try:
                return [found[start]]
            except IndexError:
                raise HostPatternError(
                    f"no hosts matched the subscripted pattern {pattern!r}") from None
        if end == -1:
            end = len(found) - 1
        return found[start:end + 1]

    def _enumerate(self, pattern: str) -> list[str]:
        regex = _compile(pattern)
        results: list[str] = []
        groups = [g for g in self.group_hosts if regex.match(g)]
        for g in groups:
            results.extend(self.group_hosts[g])
        if not groups or pattern[0] == "~" or any(c in pattern for c in ".?*["):
            results.extend(h for h in self.hosts if regex.match(h))
        if not results and pattern in LOCALHOST:
            results.append(pattern)
        if not results and not groups and pattern != "all":
            self.unmatched.append(pattern)
        return results


def _split_subscript(pattern: str) -> tuple[str, tuple[int, int | None] | None]:
    if pattern[0] == "~":
        return pattern, None
    m = _SUBSCRIPT.match(pattern)
    if not m:
        return pattern, None
    expr, idx, start, _sep, end = m.groups()
    if idx:
        return expr, (int(idx), None)
    return expr, (int(start), int(end) if end else -1)
