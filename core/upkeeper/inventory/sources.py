"""Reading ``-i`` sources into :class:`InventoryData`: files (INI, YAML, JSON, saved
``ansible-inventory --list`` output), directories read as Ansible reads them,
comma-separated host lists, and documents from inventory-source plugins."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from upkeeper.inventory.data import InventoryData
from upkeeper.inventory.ini import parse_ini
from upkeeper.inventory.patterns import InventoryError, split_host_and_port
from upkeeper.inventory.yamlfile import YAML_EXTS, load_yaml, parse_yaml_inventory, read_text

# What Ansible skips when a directory is the source (INVENTORY_IGNORE_EXTS and friends).
_IGNORED = re.compile(r"^\.|^host_vars$|^group_vars$|^vars_plugins$|"
                      r"(\.pyc|\.pyo|\.swp|\.bak|~|\.rpm|\.md|\.txt|\.rst|\.orig|\.cfg|"
                      r"\.retry)$")
def _looks_like_yaml(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if s and s[0] not in "#;":
            return s.startswith("---") or (s.endswith(":") and not s.startswith("["))
    return False


def _parse_file(path: Path, inv: InventoryData) -> None:
    name = str(path)
    ext = path.suffix.lower()
    if ext == ".toml":
        raise InventoryError("TOML inventories are not supported; use INI or YAML", name)
    if ext in YAML_EXTS:
        doc = load_yaml(path)
        if isinstance(doc.data, Mapping) and isinstance(doc.data.get("_meta"), Mapping):
            # Saved `ansible-inventory --list` output (or an RMM export in that shape).
            inv.warnings.extend(doc.warnings)
            _parse_document(name, doc.data, inv)
        else:
            parse_yaml_inventory(doc, inv)
        return
    text = read_text(path)
    if not ext:
        # Extension-less files may be either format: Ansible tries YAML, then INI.
        try:
            doc = load_yaml(path, text)
        except InventoryError as yaml_error:
            if _looks_like_yaml(text):
                raise yaml_error from None
        else:
            if isinstance(doc.data, Mapping):
                parse_yaml_inventory(doc, inv)
                return
    parse_ini(text, name, inv)


def _parse_host_list(source: str, inv: InventoryData) -> None:
    for item in source.split(","):
        item = item.strip()
        if item and item not in inv.host_vars:
            host, port = split_host_and_port(item)
            if "[" in host:
                host, port = item, None
            try:
                inv.add_host(host, "ungrouped", port)
            except ValueError as exc:
                raise InventoryError(str(exc), "host list") from None


def _parse_document(source: str, doc: Any, inv: InventoryData) -> None:
    """An ``ansible-inventory --list`` style document from an inventory-source plugin."""
    if not isinstance(doc, Mapping):
        raise InventoryError(f"inventory source returned {type(doc).__name__}, expected a "
                             f"mapping of groups", source)
    try:
        groups = {k: v for k, v in doc.items() if k != "_meta"}
        for name in groups:
            inv.add_group(str(name))
        for name, body in groups.items():
            if isinstance(body, list):
                body = {"hosts": body}
            if not isinstance(body, Mapping):
                raise ValueError(f"group {name!r} must be a mapping, got "
                                 f"{type(body).__name__}")
            hosts = body.get("hosts") or []
            for host in hosts:
                inv.add_host(str(host), str(name))
                if isinstance(hosts, Mapping):
                    for key, value in (hosts[host] or {}).items():
                        inv.set_host_var(str(host), key, value, source)
            for child in body.get("children") or []:
                inv.add_child(str(name), str(child))
            for key, value in (body.get("vars") or {}).items():
                inv.set_group_var(str(name), key, value, source)
        meta = doc.get("_meta") or {}
        for host, host_vars in (meta.get("hostvars") or {}).items():
            inv.add_host(str(host))
            for key, value in (host_vars or {}).items():
                inv.set_host_var(str(host), key, value, source)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InventoryError(f"bad inventory document: {exc}", source) from None


def parse_source(source: str | Path, inv: InventoryData, extra: Sequence[Any],
                  vars_dirs: list[Path]) -> None:
    text = str(source)
    for plugin in extra:
        name = getattr(plugin, "name", type(plugin).__name__)
        try:
            if not plugin.matches(text):
                continue
            doc = plugin.load(text)
        except InventoryError:
            raise
        except Exception as exc:
            # A broken plugin must name itself, not surface as a traceback.
            raise InventoryError(f"inventory source {name} failed: {exc}", text) from exc
        _parse_document(text, doc, inv)
        if Path(text).exists():
            vars_dirs.append(Path(text) if Path(text).is_dir() else Path(text).parent)
        return
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and "," in source:
            _parse_host_list(source, inv)
            return
        raise InventoryError("no such inventory file or directory", text)
    if path.is_dir():
        vars_dirs.append(path)
        _parse_dir(path, inv)
    else:
        vars_dirs.append(path.parent)
        _parse_file(path, inv)


def _parse_dir(path: Path, inv: InventoryData) -> None:
    for entry in sorted(os.listdir(path)):
        if _IGNORED.search(entry):
            continue
        full = path / entry
        if full.is_dir():
            _parse_dir(full, inv)
        else:
            _parse_file(full, inv)
