"""INI inventories, parsed line by line the way Ansible's ``ini`` inventory plugin does
(sections, ``:vars``/``:children``, ranges, ``host:port``, literal-evaluated values)."""

from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from upkeeper.inventory.data import InventoryData
from upkeeper.inventory.patterns import (
    INVALID_GROUP_NAME,
    InventoryError,
    expand_hostname_range,
    split_host_and_port,
)
from upkeeper.yamlsource import MAX_DEPTH, within_depth

_COMMENT = ("#", ";")
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:\#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:\#.*)?$")


def parse_value(text: str) -> Any:
    """An INI value as Ansible stores it: a Python literal when ``ast.literal_eval`` reads
    one (``8080`` -> int, ``"{'a': 1}"`` -> dict, ``True``), else the text itself."""
    value: Any = text
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    except (TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"cannot read value {text[:60]!r}: {exc}") from None
    if not within_depth(value):
        raise ValueError(f"value {text[:60]!r} is nested more than {MAX_DEPTH} levels deep")
    return _coerce(value)


def _coerce(value: Any) -> Any:
    # Mirrors Ansible: tuples/sets become lists, bytes text, and types no variable can
    # hold (Ellipsis, complex) go back to strings.
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    if isinstance(value, (list, tuple, set)):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        return {k: _coerce(v) for k, v in value.items()}
    if value is ...:
        return "..."
    if isinstance(value, complex):
        return str(value)
    return value


class _Pending:
    __slots__ = ("line", "name", "parents", "state")

    def __init__(self, line: int, state: str, name: str, parents: list[str]) -> None:
        self.line, self.state, self.name, self.parents = line, state, name, parents


def parse_ini(text: str, path: str, inv: InventoryData) -> None:
    """Add the hosts, groups and vars of an INI inventory to ``inv``.

    :raises InventoryError: naming ``path`` and the line, for a broken line, an invalid
        range, or a ``:children`` entry naming a group that is never defined (Ansible
        refuses that too, as it does ``[x:vars]`` for an undefined group).
    """
    pending: dict[str, _Pending] = {}
    group, state = "ungrouped", "hosts"
    lineno = 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in _COMMENT:
            continue
        try:
            m = _SECTION.match(line)
            if m:
                group, state = m.group(1), m.group(2) or "hosts"
                if state not in ("hosts", "children", "vars"):
                    raise ValueError(f"section [{group}:{state}] has unknown type {state!r} "
                                     f"(expected :vars or :children)")
                if INVALID_GROUP_NAME.search(group) and group not in inv.groups:
                    inv.warnings.append(
                        f"{path}:{lineno}: group name {group!r} has characters that are "
                        f"not valid in variable names")
                if not inv.has_group(group):
                    if state == "vars" and group not in pending:
                        pending[group] = _Pending(lineno, state, group, [])
                    inv.add_group(group)
                if group in pending and state != "vars":
                    if pending[group].state == "children":
                        _add_pending_children(inv, group, pending)
                    else:
                        del pending[group]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise ValueError(f"invalid section {line!r}: no spaces or other invalid "
                                 f"characters are allowed in a section header")
            if state == "hosts":
                _parse_host_line(line, group, inv, f"{path}:{lineno}")
            elif state == "vars":
                if "=" not in line:
                    raise ValueError(f"expected key=value in [{group}:vars], got {line!r}")
                key, value = (part.strip() for part in line.split("=", 1))
                inv.set_group_var(group, key, parse_value(value), f"{path}:{lineno}")
            else:
                gm = _GROUP_NAME.match(line)
                if not gm:
                    raise ValueError(f"expected a group name in [{group}:children], "
                                     f"got {line!r}")
                child = gm.group(1)
                if inv.has_group(child):
                    inv.add_child(group, child)
                elif child in pending:
                    pending[child].parents.append(group)
                else:
                    pending[child] = _Pending(lineno, "children", child, [group])
        except ValueError as exc:
            raise InventoryError(str(exc), path, lineno) from None
    for decl in pending.values():
        if decl.state == "vars":
            raise InventoryError(f"[{decl.name}:vars] for group {decl.name!r}, which is "
                                 f"never defined", path, decl.line)
        raise InventoryError(f"unknown group {decl.name!r} in [{decl.parents[0]}:children]",
                             path, decl.line)


def _add_pending_children(inv: InventoryData, group: str,
                          pending: dict[str, _Pending]) -> None:
    for parent in pending[group].parents:
        inv.add_child(parent, group)
        if parent in pending and pending[parent].state == "children":
            _add_pending_children(inv, parent, pending)
    del pending[group]


def _parse_host_line(line: str, group: str, inv: InventoryData, origin: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise ValueError(f"cannot parse host line {line!r}: {exc}") from None
    if not tokens:
        return
    pattern = tokens[0]
    host, port = split_host_and_port(pattern)
    if pattern.strip().endswith(":") and port is None:
        raise ValueError(f"invalid host {pattern!r}: a trailing ':' is reserved for a "
                         f"port (is this a YAML file?)")
    try:
        names = expand_hostname_range(host)
    except ValueError as exc:
        raise ValueError(f"invalid host range in {pattern!r}: {exc}") from None
    if any(name.strip() == "---" for name in names):
        raise ValueError("invalid host '---': this looks like a YAML file")
    variables: dict[str, Any] = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise ValueError(f"expected key=value host variable, got {token!r}")
        key, value = token.split("=", 1)
        variables[key] = parse_value(value)
    for name in names:
        inv.add_host(name, group, port)
        for key, value in variables.items():
            inv.set_host_var(name, key, value, origin)
