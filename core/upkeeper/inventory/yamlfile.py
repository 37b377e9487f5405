"""YAML inventories and group_vars/host_vars files, read as Ansible's ``yaml`` inventory
plugin reads them, remembering each key's line for error messages."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from upkeeper.inventory.patterns import (
    INVALID_GROUP_NAME,
    InventoryError,
    expand_hostname_range,
    split_host_and_port,
)

if TYPE_CHECKING:
    from upkeeper.inventory.loader import InventoryData

KeyPath = tuple[str, ...]
_SECTIONS = ("vars", "children", "hosts")
YAML_EXTS = (".yml", ".yaml", ".json")


class UnsafeText(str):
    """A value tagged ``!unsafe``: Ansible never templates it, and neither should we."""

    __slots__ = ()
    __UNSAFE__ = True


class VaultedValue:
    """A ``!vault`` value: kept encrypted (upkeeper has no vault password); never printed."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "VaultedValue(<encrypted>)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VaultedValue) and other.ciphertext == self.ciphertext

    def __hash__(self) -> int:
        return hash(self.ciphertext)


class _Loader(yaml.SafeLoader):
    """SafeLoader plus the two tags Ansible inventories use."""


def _construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return UnsafeText(loader.construct_scalar(node))
    raise yaml.constructor.ConstructorError(
        None, None, "!unsafe is only supported on strings here", node.start_mark)


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!vault expects an encrypted string", node.start_mark)
    return VaultedValue(str(loader.construct_scalar(node)))


_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)
_Loader.add_constructor("!vault-encrypted", _construct_vault)


@dataclass
class YamlDoc:
    """Parsed YAML (or JSON) and the 1-based line of each mapping key path."""

    path: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, *keys: object) -> int | None:
        """Line of the key path, or of its nearest ancestor that has one."""
        path = tuple(str(k) for k in keys)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)

    def error(self, message: str, *keys: object) -> InventoryError:
        return InventoryError(message, self.path, self.line_of(*keys))


def _walk(node: yaml.Node, path: KeyPath, out: dict[KeyPath, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            child = (*path, str(key))
            out[child] = key_node.start_mark.line + 1
            _walk(value_node, child, out)


def _compose(text: str) -> tuple[Any, dict[KeyPath, int]]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: dict[KeyPath, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return data, lines


def read_text(path: Path) -> str:
    try:
        # utf-8-sig: inventories saved by Windows editors start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                             path) from None
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror or exc}", path) from None


def load_yaml(path: Path, text: str | None = None) -> YamlDoc:
    """Parse a YAML or JSON file. JSON is tried first, as Ansible's loader does (so
    ``1e3`` in a .json file is a number).

    :raises InventoryError: with the line YAML reports.
    """
    if text is None:
        text = read_text(path)
    name = str(path)
    if text.startswith("$ANSIBLE_VAULT;"):
        raise InventoryError("the file is encrypted with ansible-vault, which upkeeper cannot "
                             "decrypt; keep the secrets upkeeper needs in the environment "
                             "(\"{{ env.NAME }}\")", name, 1)
    try:
        data = json.loads(text)
    except ValueError:
        pass
    else:
        try:
            lines = _compose(text)[1]
        except yaml.YAMLError:
            lines = {}
        return YamlDoc(name, data, lines)
    try:
        data, lines = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        col = f" (column {mark.column + 1})" if mark else ""
        ctx = exc.context_mark
        if exc.context and ctx is not None and mark is not None and ctx.line != mark.line:
            col = f" (column {mark.column + 1}; {exc.context} at line {ctx.line + 1})"
        raise InventoryError(f"invalid YAML: {problem}{col}", name,
                             mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise InventoryError(f"invalid YAML: {exc}", name) from None
    return YamlDoc(name, data, lines)


def load_vars_file(path: Path) -> dict[str, Any]:
    """A group_vars/ or host_vars/ file: a mapping of variables (empty file -> {})."""
    doc = load_yaml(path)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, Mapping):
        raise doc.error(f"a vars file must be a mapping of variables, "
                        f"not {_kind(doc.data)}")
    return dict(doc.data)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def parse_yaml_inventory(doc: YamlDoc, inv: InventoryData) -> None:
    """Add a parsed YAML inventory (``all:``/``hosts:``/``children:``/``vars:``) to ``inv``.

    Where Ansible only warns and skips (a top-level key that is not a group, an unknown
    key in a group) this raises: such a file is almost always a vars file given as an
    inventory, or a typo that would silently drop hosts.
    """
    data = doc.data
    if data is None:
        inv.warnings.append(f"{doc.path}: empty inventory file")
        return
    if not isinstance(data, Mapping):
        raise doc.error(f"not a YAML inventory: expected a mapping of groups "
                        f"(all:, hosts:, children:), got {_kind(data)}")
    if "plugin" in data:
        raise doc.error(f"this is an Ansible inventory plugin configuration "
                        f"(plugin: {data['plugin']}), which upkeeper cannot run; use an "
                        f"upkeeper inventory-source plugin instead", "plugin")
    for name, group_data in data.items():
        _parse_group(doc, inv, name, group_data, (name,))


def _parse_group(doc: YamlDoc, inv: InventoryData, name: Any, group_data: Any,
                 keys: tuple[Any, ...]) -> str:
    if not isinstance(name, str) or not name:
        raise doc.error(f"invalid group name {name!r}: expected a non-empty string", *keys)
    if not isinstance(group_data, (Mapping, type(None))):
        raise doc.error(
            f"not a YAML inventory: {name!r} is not a group (expected a mapping with "
            f"hosts/children/vars, got {_kind(group_data)}); is this a vars file?", *keys)
    if INVALID_GROUP_NAME.search(name) and not inv.has_group(name):
        inv.warnings.append(f"{doc.path}:{doc.line_of(*keys)}: group name {name!r} has "
                            f"characters that are not valid in variable names")
    try:
        inv.add_group(name)
    except ValueError as exc:
        raise doc.error(str(exc), *keys) from None
    if not group_data:
        return name
    sections = dict(group_data)
    for key, value in sections.items():
        if key not in _SECTIONS:
            raise doc.error(f"unexpected key {key!r} in group {name!r}: only hosts, "
                            f"children and vars are valid", *keys, key)
        if isinstance(value, str):
            sections[key] = {value: None}
        elif not isinstance(value, (Mapping, type(None))):
            raise doc.error(f"invalid {key!r} entry for group {name!r}: requires a "
                            f"mapping, found {_kind(value)}", *keys, key)
    for key, value in sections.items():
        if not value:
            continue
        try:
            if key == "vars":
                for var, var_value in value.items():
                    inv.set_group_var(name, var, var_value)
            elif key == "children":
                for sub, sub_data in value.items():
                    child = _parse_group(doc, inv, sub, sub_data, (*keys, key, sub))
                    try:
                        inv.add_child(name, child)
                    except ValueError as exc:
                        raise doc.error(str(exc), *keys, key, sub) from None
            else:
                for pattern, host_vars in value.items():
                    _add_hosts(doc, inv, name, pattern, host_vars, (*keys, key, pattern))
        except ValueError as exc:
            raise doc.error(str(exc), *keys, key) from None
    return name


def _add_hosts(doc: YamlDoc, inv: InventoryData, group: str, pattern: Any, host_vars: Any,
               keys: tuple[Any, ...]) -> None:
    if not isinstance(pattern, str):
        raise doc.error(f"host pattern {pattern!r} must be a string: enclose numbers in "
                        f"quotes", *keys)
    if not isinstance(host_vars, (Mapping, type(None))):
        raise doc.error(f"vars of host {pattern!r} must be a mapping, not "
                        f"{_kind(host_vars)}", *keys)
    host, port = split_host_and_port(pattern)
    try:
        names = expand_hostname_range(host)
    except ValueError as exc:
        raise doc.error(f"invalid host range in {pattern!r}: {exc}", *keys) from None
    for hostname in names:
        try:
            inv.add_host(hostname, group, port)
            for var, value in (host_vars or {}).items():
                inv.set_host_var(hostname, var, value)
        except ValueError as exc:
            raise doc.error(str(exc), *keys) from None


class VarsFiles:
    """group_vars/ and host_vars/ beside each source, each file read once."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self.dirs = list(dict.fromkeys(dirs))
        self._cache: dict[Path, dict[str, Any]] = {}
        self._found: dict[tuple[Path, str, str], list[Path]] = {}
        # Listing each group_vars/ host_vars/ once spares a stat per name and extension.
        self._listing: dict[Path, set[str]] = {}

    def group(self, name: str, only: Path | None = None) -> dict[str, Any]:
        return self._collect("group_vars", name, [only] if only else self.dirs)

    def host(self, name: str) -> dict[str, Any]:
        return self._collect("host_vars", name, self.dirs)

    def _collect(self, kind: str, name: str, dirs: Sequence[Path]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        if name.startswith(os.sep):
            return merged
        for d in dirs:
            key = (d, kind, name)
            if key not in self._found:
                self._found[key] = self._find(d / kind, name)
            for path in self._found[key]:
                if path not in self._cache:
                    self._cache[path] = load_vars_file(path)
                merged.update(self._cache[path])
        return merged

    def _find(self, base: Path, name: str) -> list[Path]:
        if base not in self._listing:
            self._listing[base] = set(os.listdir(base)) if base.is_dir() else set()
        if not any(name + ext in self._listing[base] for ext in ("", *YAML_EXTS)):
            return []
        return find_vars_files(base, name)


def find_vars_files(base: Path, name: str) -> list[Path]:
    """Ansible's lookup: ``NAME`` (file, or directory read recursively in sorted order),
    else ``NAME.yml``, ``NAME.yaml``, ``NAME.json``; the first that exists wins."""
    for ext in ("", *YAML_EXTS):
        candidate = base / (name + ext)
        if candidate.is_dir():
            return _dir_vars_files(candidate)
        if candidate.exists():
            return [candidate]
    return []


def _dir_vars_files(path: Path) -> list[Path]:
    found: list[Path] = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(".") or entry.name.endswith("~"):
            continue
        if entry.is_dir() and not entry.suffix:
            found.extend(_dir_vars_files(entry))
        elif entry.is_file() and (not entry.suffix or entry.suffix in YAML_EXTS):
            found.append(entry)
    return found
