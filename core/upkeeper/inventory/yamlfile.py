"""YAML inventories and group_vars/host_vars files, read as Ansible's ``yaml`` inventory
plugin reads them, remembering each key's line for error messages."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from upkeeper.inventory.data import InventoryData
from upkeeper.inventory.patterns import (
    INVALID_GROUP_NAME,
    InventoryError,
    expand_hostname_range,
    split_host_and_port,
)
from upkeeper.yamlsource import LocatedLoader, LocatedYAML, SourceError
from upkeeper.yamlsource import load_yaml as _load_yaml
from upkeeper.yamlsource import read_text as _read_text

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


class InventoryLoader(LocatedLoader):
    """The shared bounded loader plus the two tags Ansible inventories use."""


def _construct_unsafe(loader: LocatedLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return UnsafeText(loader.construct_scalar(node))
    raise yaml.constructor.ConstructorError(
        None, None, "!unsafe is only supported on strings here", node.start_mark)


def _construct_vault(loader: LocatedLoader, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, "!vault expects an encrypted string", node.start_mark)
    return VaultedValue(str(loader.construct_scalar(node)))


InventoryLoader.add_constructor("!unsafe", _construct_unsafe)  # type: ignore[type-var]
InventoryLoader.add_constructor("!vault", _construct_vault)  # type: ignore[type-var]
InventoryLoader.add_constructor("!vault-encrypted", _construct_vault)  # type: ignore[type-var]


def _error(doc: LocatedYAML, message: str, *keys: object) -> InventoryError:
    return InventoryError(message, doc.path, _line(doc, *keys))


def _line(doc: LocatedYAML, *keys: object) -> int | None:
    return doc.line_of(tuple(str(k) for k in keys))


def _as_inventory_error(exc: SourceError) -> InventoryError:
    if isinstance(exc, InventoryError):
        return exc
    reason = exc.reason if exc.column is None else f"{exc.reason} (column {exc.column})"
    return InventoryError(reason, exc.path, exc.line)


def read_text(path: Path) -> str:
    """A bounded regular file's text (see :func:`upkeeper.yamlsource.read_text`)."""
    try:
        return _read_text(path)
    except SourceError as exc:
        raise _as_inventory_error(exc) from None


def load_yaml(path: Path, text: str | None = None) -> LocatedYAML:
    """Parse a YAML or JSON file with the shared bounded loader. JSON is tried first, as
    Ansible's loader does (so ``1e3`` in a .json file is a number). Duplicate keys are
    only warnings (``doc.warnings``), as in Ansible: the later value wins.

    :raises InventoryError: naming the file and line.
    """
    if text is None:
        text = read_text(path)
    name = str(path)
    if text.startswith("$ANSIBLE_VAULT;"):
        raise InventoryError("the file is encrypted with ansible-vault, which upkeeper cannot "
                             "decrypt; keep the secrets upkeeper needs in the environment "
                             "(\"{{ env.NAME }}\")", name, 1)
    try:
        doc = _load_yaml(name, text, loader=InventoryLoader, duplicates="warn",
                         json_first=True)
    except SourceError as exc:
        raise _as_inventory_error(exc) from None
    return doc


def load_vars_file(path: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """A group_vars/ or host_vars/ file: a mapping of variables (empty file -> {}); its
    warnings (duplicate keys) are appended to ``warnings``."""
    doc = load_yaml(path)
    if warnings is not None:
        warnings.extend(doc.warnings)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, Mapping):
        raise _error(doc, f"a vars file must be a mapping of variables, "
                          f"not {_kind(doc.data)}")
    return dict(doc.data)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def parse_yaml_inventory(doc: LocatedYAML, inv: InventoryData) -> None:
    """Add a parsed YAML inventory (``all:``/``hosts:``/``children:``/``vars:``) to ``inv``.

    Where Ansible only warns and skips (a top-level key that is not a group, an unknown
    key in a group) this raises: such a file is almost always a vars file given as an
    inventory, or a typo that would silently drop hosts.
    """
    inv.warnings.extend(doc.warnings)
    data = doc.data
    if data is None:
        inv.warnings.append(f"{doc.path}: empty inventory file")
        return
    if not isinstance(data, Mapping):
        raise _error(doc, f"not a YAML inventory: expected a mapping of groups "
                        f"(all:, hosts:, children:), got {_kind(data)}")
    if "plugin" in data:
        raise _error(doc, f"this is an Ansible inventory plugin configuration "
                        f"(plugin: {data['plugin']}), which upkeeper cannot run; use an "
                        f"upkeeper inventory-source plugin instead", "plugin")
    for name, group_data in data.items():
        _parse_group(doc, inv, name, group_data, (name,))


def _parse_group(doc: LocatedYAML, inv: InventoryData, name: Any, group_data: Any,
                 keys: tuple[Any, ...]) -> str:
    if not isinstance(name, str) or not name:
        raise _error(doc, f"invalid group name {name!r}: expected a non-empty string", *keys)
    if not isinstance(group_data, (Mapping, type(None))):
        raise _error(doc,
            f"not a YAML inventory: {name!r} is not a group (expected a mapping with "
            f"hosts/children/vars, got {_kind(group_data)}); is this a vars file?", *keys)
    if INVALID_GROUP_NAME.search(name) and not inv.has_group(name):
        inv.warnings.append(f"{doc.path}:{_line(doc, *keys)}: group name {name!r} has "
                            f"characters that are not valid in variable names")
    try:
        inv.add_group(name)
    except ValueError as exc:
        raise _error(doc, str(exc), *keys) from None
    if not group_data:
        return name
    sections = dict(group_data)
    for key, value in sections.items():
        if key not in _SECTIONS:
            raise _error(doc, f"unexpected key {key!r} in group {name!r}: only hosts, "
                            f"children and vars are valid", *keys, key)
        if isinstance(value, str):
            sections[key] = {value: None}
        elif not isinstance(value, (Mapping, type(None))):
            raise _error(doc, f"invalid {key!r} entry for group {name!r}: requires a "
                            f"mapping, found {_kind(value)}", *keys, key)
    for key, value in sections.items():
        if not value:
            continue
        try:
            if key == "vars":
                for var, var_value in value.items():
                    inv.set_group_var(name, var, var_value,
                                      f"{doc.path}:{_line(doc, *keys, key, var)}")
            elif key == "children":
                for sub, sub_data in value.items():
                    child = _parse_group(doc, inv, sub, sub_data, (*keys, key, sub))
                    try:
                        inv.add_child(name, child)
                    except ValueError as exc:
                        raise _error(doc, str(exc), *keys, key, sub) from None
            else:
                for pattern, host_vars in value.items():
                    _add_hosts(doc, inv, name, pattern, host_vars, (*keys, key, pattern))
        except ValueError as exc:
            raise _error(doc, str(exc), *keys, key) from None
    return name


def _add_hosts(doc: LocatedYAML, inv: InventoryData, group: str, pattern: Any, host_vars: Any,
               keys: tuple[Any, ...]) -> None:
    if not isinstance(pattern, str):
        raise _error(doc, f"host pattern {pattern!r} must be a string: enclose numbers in "
                        f"quotes", *keys)
    if not isinstance(host_vars, (Mapping, type(None))):
        raise _error(doc, f"vars of host {pattern!r} must be a mapping, not "
                        f"{_kind(host_vars)}", *keys)
    host, port = split_host_and_port(pattern)
    try:
        names = expand_hostname_range(host)
    except ValueError as exc:
        raise _error(doc, f"invalid host range in {pattern!r}: {exc}", *keys) from None
    for hostname in names:
        try:
            inv.add_host(hostname, group, port)
            for var, value in (host_vars or {}).items():
                inv.set_host_var(hostname, var, value,
                                 f"{doc.path}:{_line(doc, *keys, var)}")
        except ValueError as exc:
            raise _error(doc, str(exc), *keys) from None


class VarsFiles:
    """group_vars/ and host_vars/ beside each source, each file read once."""

    def __init__(self, dirs: Sequence[Path], warnings: list[str] | None = None) -> None:
        self.dirs = list(dict.fromkeys(dirs))
        self.warnings = warnings if warnings is not None else []
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
                    self._cache[path] = load_vars_file(path, self.warnings)
                merged.update(self._cache[path])
        return merged

    def source(self, kind: str, name: str, key: str, dirs: Sequence[Path]) -> str | None:
        """The file whose value of ``key`` wins for ``name`` (None if none sets it)."""
        for d in reversed(dirs):
            for path in reversed(self._found.get((d, kind, name), [])):
                if key in self._cache.get(path, {}):
                    return str(path)
        return None

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
