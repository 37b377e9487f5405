"""Fact categories: how each part of a fact document is keyed, which fields are volatile,
how its changes read, and the stable host identity. Built-ins follow the fact document
contract of ``docs.collect``; plugins add theirs with ``upkeeper_register_doc_categories``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

#: Version of the fact document (``details["facts"]``) this module reads.
FACTS_SCHEMA_VERSION = 1
#: Section metadata that says how a value was had, never what the host is.
SECTION_META = ("source", "collected_at", "unavailable")
IDENTITY_ORDER = (("machine_id", "machine-id"), ("smbios_uuid", "uuid"), ("serial", "serial"))

#: A document section a plugin draws for its category: the section's stored data
#: (``fields``/``items``/``unavailable``) -> table rows (column -> text).
RowsFunction = Callable[[Mapping[str, Any]], Sequence[Mapping[str, Any]]]


@dataclass(frozen=True)
class DocCategory:
    """One category of facts (``software``, ``ports``): how it is compared and shown.

    :param key: the section name in the fact document (an identifier).
    :param title: heading in the documents.
    :param kind: ``"fields"`` (one mapping) or ``"items"`` (a list of mappings).
    :param keys: item fields that identify an item between two snapshots.
    :param fallback_keys: used when every one of ``keys`` is missing (disks: serial,
        else name).
    :param volatile: fields that change on their own (free space, uptime): never
        reported as changes or drift.
    :param group: the "what changed" category its changes are listed under (defaults
        to ``key``; interfaces and network share ``network``).
    :param verbs: how changes read: ``{"added": "opened", "removed": "closed"}``.
    :param replace_by: an item field; a removed and an added item with the same value
        of it are one ``replaced`` change (a certificate renewed on ``tcp/443``).
    :param columns: fields shown, in order (empty: every field, sorted).
    :param rows: a plugin's own drawing of the section (see :data:`RowsFunction`).
    :param order: categories are shown by ascending ``order``, then key.
    """

    key: str
    title: str
    kind: Literal["fields", "items"] = "items"
    keys: tuple[str, ...] = ()
    fallback_keys: tuple[str, ...] = ()
    volatile: tuple[str, ...] = ()
    group: str = ""
    verbs: Mapping[str, str] = field(default_factory=dict)
    replace_by: str = ""
    columns: tuple[str, ...] = ()
    rows: RowsFunction | None = field(default=None, compare=False)
    order: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.key, str) and self.key.isidentifier()):
            raise ValueError(f"doc category key {self.key!r} is not an identifier")
        if self.kind not in ("fields", "items"):
            raise ValueError(f"doc category {self.key!r}: kind must be 'fields' or 'items'")
        for name in ("keys", "fallback_keys", "volatile", "columns"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"doc category {self.key!r}: {name} must be a tuple of "
                                 "field names")

    @property
    def change_group(self) -> str:
        return self.group or self.key

    def verb(self, action: str) -> str:
        return self.verbs.get(action, action)


def _cat(key: str, title: str, kind: Literal["fields", "items"], order: int,
         **kw: Any) -> DocCategory:
    return DocCategory(key, title, kind, order=order, **kw)


BUILTIN: tuple[DocCategory, ...] = (
    _cat("identity", "Identity", "fields", 10, group="hardware",
         columns=("hostname", "fqdn", "machine_id", "smbios_uuid", "serial", "manufacturer",
                  "model", "virtual", "hypervisor")),
    _cat("os", "Operating system", "fields", 20, volatile=("last_boot", "uptime_seconds"),
         verbs={"changed": "upgraded"},
         columns=("name", "version", "build", "kernel", "install_date", "last_boot",
                  "eol", "eol_date")),
    _cat("hardware", "Hardware", "fields", 30, volatile=("ram_free_bytes", "load_1m"),
         columns=("cpu_model", "cpu_cores", "cpu_threads", "ram_bytes")),
    _cat("disks", "Disks", "items", 40, keys=("serial",), fallback_keys=("name",),
         columns=("name", "model", "serial", "size_bytes")),
    _cat("filesystems", "Filesystems", "items", 50, keys=("mount",), group="disks",
         volatile=("used_bytes", "free_bytes"),
         columns=("mount", "device", "fstype", "size_bytes", "used_bytes", "free_bytes")),
    _cat("interfaces", "Network interfaces", "items", 60, keys=("name",), group="network",
         columns=("name", "mac", "addresses", "dhcp")),
    _cat("network", "Network", "fields", 70, columns=("default_gateway", "dns_servers")),
    _cat("ports", "Listening ports", "items", 80, keys=("proto", "address", "port"),
         verbs={"added": "opened", "removed": "closed"},
         columns=("proto", "address", "port", "process")),
    _cat("software", "Installed software", "items", 90, keys=("name", "arch"),
         verbs={"changed": "upgraded"}, columns=("name", "version", "arch")),
    _cat("roles", "Roles and features", "items", 100, keys=("name",), group="software",
         columns=("name",)),
    _cat("services", "Services", "items", 110, keys=("name",), volatile=("running",),
         columns=("name", "enabled", "running")),
    _cat("admins", "Local administrators", "items", 120, keys=("name", "group"),
         columns=("name", "group")),
    # One certificate may be served on several sources (tcp/443 and its file).
    _cat("certificates", "Certificates", "items", 130, keys=("source", "sha256"),
         replace_by="source",
         columns=("source", "subject", "sans", "issuer", "not_before", "not_after",
                  "sha256")),
    _cat("backups", "Backup jobs", "items", 140, keys=("tool", "repository"),
         volatile=("last_snapshot",), columns=("tool", "repository", "last_snapshot")),
)


def category_table(extra: Iterable[DocCategory] = ()) -> dict[str, DocCategory]:
    """Built-ins, then plugins' categories (a key taken already is refused)."""
    table = {c.key: c for c in BUILTIN}
    for cat in extra:
        if cat.key in table:
            raise ValueError(f"doc category {cat.key!r} is registered twice")
        table[cat.key] = cat
    return table


def guess_category(key: str, section: Mapping[str, Any]) -> DocCategory:
    """A category nobody registered: items keyed by ``name`` when they have one."""
    items = section.get("items")
    if isinstance(items, list):
        named = bool(items) and all(isinstance(i, Mapping) and "name" in i for i in items)
        return DocCategory(key if key.isidentifier() else "unknown", key, "items",
                           keys=("name",) if named else ())
    return DocCategory(key if key.isidentifier() else "unknown", key, "fields")


def is_unavailable(value: Any) -> bool:
    """A value the collector could not have: ``{"unavailable": "reason"}``."""
    return isinstance(value, Mapping) and set(value) == {"unavailable"}


def stable_identity(doc: Mapping[str, Any]) -> tuple[str, bool]:
    """The store key of a fact document and whether it is weak (name only).

    First present of machine id, SMBIOS UUID, serial; else ``name:<inventory name>``.
    """
    keys = doc.get("identity_keys")
    if isinstance(keys, Mapping):
        for field_name, prefix in IDENTITY_ORDER:
            value = keys.get(field_name)
            if isinstance(value, str) and value.strip() and not is_unavailable(value):
                return f"{prefix}:{value.strip().lower()}", False
    return f"name:{doc.get('host', '')}", True


def canonical(value: Any) -> str:
    """A stable text form of a value, for keys and comparisons."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def item_key(cat: DocCategory, item: Mapping[str, Any]) -> str:
    for keys in (cat.keys, cat.fallback_keys):
        values = [item.get(k) for k in keys]
        present = [str(v) for v in values if v not in (None, "") and not is_unavailable(v)]
        if present:
            return " ".join(present)
    return canonical({k: v for k, v in item.items() if k not in cat.volatile})
