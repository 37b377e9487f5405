"""Structural changes between two sets of host facts: what changed since a date, and what
drifted from the approved baseline. Volatile fields, section metadata and values a
collector could not have on either side never count as changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upkeeper.asbuilt.categories import (
    DocCategory,
    canonical,
    guess_category,
    is_unavailable,
    item_key,
)
from upkeeper.asbuilt.snapshots import HostDoc

HOSTS_GROUP = "hosts"


@dataclass(frozen=True)
class Change:
    """One structural change on one host (or a host appearing or vanishing)."""

    group: str
    category: str
    action: str
    host: str
    identity: str
    item: str
    before: Any = None
    after: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "category": self.category, "action": self.action,
                "host": self.host, "id": self.identity, "item": self.item,
                "before": self.before, "after": self.after}

    @property
    def sort_key(self) -> tuple[str, ...]:
        return (self.group, self.host.lower(), self.identity, self.category, self.item,
                self.action)


def _section(doc: HostDoc, key: str) -> Mapping[str, Any] | None:
    section = doc.sections.get(key)
    if not isinstance(section, Mapping) or section.get("unavailable"):
        return None  # not collected this time: nothing to compare, not "all removed"
    return section


def _fields(cat: DocCategory, data: Any) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        return {}
    return {str(k): v for k, v in data.items()
            if k not in cat.volatile and not is_unavailable(v)}


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b  # 1 and True are not the same fact


def _differs(cat: DocCategory, old: Mapping[str, Any],
             new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    if old == new:  # most items of most hosts: one C-level comparison
        return {}
    a, b = _fields(cat, old), _fields(cat, new)
    # A field only one side reports (an older collector) is not a change either.
    return {k: (a[k], b[k]) for k in sorted(a.keys() & b.keys()) if not _same(a[k], b[k])}


def _items(cat: DocCategory, section: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    items = section.get("items")
    if not isinstance(items, list):
        return {}
    return {item_key(cat, i): i for i in items if isinstance(i, Mapping)}


def _compact(cat: DocCategory, value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sorted(_fields(cat, value).items())}


def host_changes(old: HostDoc, new: HostDoc,
                 categories: Mapping[str, DocCategory]) -> list[Change]:
    """The structural changes of one host between two snapshots."""
    out: list[Change] = []
    for key in sorted(set(old.sections) | set(new.sections)):
        a, b = _section(old, key), _section(new, key)
        if a is None or b is None:
            continue
        cat = categories.get(key) or guess_category(key, b)

        def add(action: str, item: str, before: Any = None, after: Any = None,
                cat: DocCategory = cat) -> None:
            out.append(Change(cat.change_group, cat.key, cat.verb(action), new.host,
                              new.identity, item, before, after))

        if cat.kind == "fields":
            diff = _differs(cat, a.get("fields") or {}, b.get("fields") or {})
            if diff:
                add("changed", ", ".join(diff), {k: v[0] for k, v in diff.items()},
                    {k: v[1] for k, v in diff.items()})
            continue
        ia, ib = _items(cat, a), _items(cat, b)
        removed = {k: ia[k] for k in sorted(ia.keys() - ib.keys())}
        added = {k: ib[k] for k in sorted(ib.keys() - ia.keys())}
        if cat.replace_by:
            for rk, ritem in list(removed.items()):
                slot = canonical(ritem.get(cat.replace_by))
                match = next((ak for ak, aitem in added.items()
                              if canonical(aitem.get(cat.replace_by)) == slot), None)
                if match is not None:
                    add("replaced", str(ritem.get(cat.replace_by)), _compact(cat, ritem),
                        _compact(cat, added.pop(match)))
                    del removed[rk]
        for k, item in removed.items():
            add("removed", k, before=_compact(cat, item))
        for k, item in added.items():
            add("added", k, after=_compact(cat, item))
        for k in sorted(ia.keys() & ib.keys()):
            diff = _differs(cat, ia[k], ib[k])
            if diff:
                add("changed", k, {f: v[0] for f, v in diff.items()},
                    {f: v[1] for f, v in diff.items()})
    return out


def compare(old: Mapping[str, HostDoc], new: Mapping[str, HostDoc],
            categories: Mapping[str, DocCategory], *,
            vanished: Mapping[str, HostDoc] | None = None) -> list[Change]:
    """Changes from ``old`` to ``new`` (facts by identity), sorted.

    A host only in ``new`` appeared; one only in ``old`` vanished, unless ``vanished``
    is given: then only those hosts count as vanished (``since``: hosts with no
    collection after the date).
    """
    out: list[Change] = []
    gone = old.keys() - new.keys() if vanished is None else vanished.keys()
    for identity in sorted(new.keys() - old.keys()):
        d = new[identity]
        out.append(Change(HOSTS_GROUP, HOSTS_GROUP, "appeared", d.host, identity, d.host))
    for identity in sorted(gone):
        d = old.get(identity) or (vanished or {})[identity]
        out.append(Change(HOSTS_GROUP, HOSTS_GROUP, "vanished", d.host, identity, d.host))
    for identity in sorted(old.keys() & new.keys()):
        out += host_changes(old[identity], new[identity], categories)
    return sorted(out, key=lambda c: c.sort_key)
