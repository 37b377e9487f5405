"""The fact document of one host (the contract in docs/documentation-collection.md): its
categories, sections with when/how each was collected, and values marked unavailable."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

SCHEMA_VERSION = 1

#: category -> kind ("fields" or "items"), in the order documents list them.
CATEGORIES: dict[str, str] = {
    "identity": "fields", "os": "fields", "hardware": "fields", "disks": "items",
    "filesystems": "items", "interfaces": "items", "network": "fields", "ports": "items",
    "software": "items", "roles": "items", "services": "items", "admins": "items",
    "certificates": "items", "backups": "items",
}
#: Reason prefix of a category that does not exist on the platform (Windows roles on Linux):
#: counted apart from failures.
NOT_APPLICABLE = "not applicable"
#: Reason prefix of a category with nothing to report where nothing is not an error (no
#: backup check runs on the host): not a failure either.
NONE_REPORTED = "none reported"
#: Reason prefix of a category the params left out (certificates with tls_probe off).
NOT_COLLECTED = "not collected"
#: Longest reason text kept (tool messages can be long).
_REASON_MAX = 300
#: Fields whose null is a value: ``eol`` unknown, ``hypervisor`` of a physical machine.
NULLABLE = frozenset({"eol", "hypervisor"})


def unavailable(reason: str) -> dict[str, str]:
    """A field value that could not be had, with why."""
    return {"unavailable": short(reason)}


def short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= _REASON_MAX else text[:_REASON_MAX - 3] + "..."


def is_unavailable(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"unavailable"}


def iso(value: datetime | float | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` (seconds), from a datetime or epoch seconds."""
    if value is None:
        return None
    dt = (value if isinstance(value, datetime)
          else datetime.fromtimestamp(float(value), tz=timezone.utc))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")


@dataclass
class Section:
    """One category of the document as it is being filled."""

    name: str
    source: str
    collected_at: float = field(default_factory=time.time)
    reason: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return CATEGORIES[self.name]

    def fail(self, reason: str) -> Section:
        """Mark the whole category unavailable (its fields/items are dropped)."""
        self.reason = short(reason) or "unknown error"
        self.fields, self.items = {}, []
        return self

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "collected_at": self.collected_at,
                               "unavailable": self.reason}
        if self.kind == "fields":
            out["fields"] = {} if self.reason else {
                k: (unavailable("not reported")
                    if (v is None and k not in NULLABLE) or v == "" else v)
                for k, v in self.fields.items()}
        else:
            out["items"] = [] if self.reason else self.items
        return out


def failed(name: str, source: str, reason: str, at: float | None = None) -> Section:
    return Section(name, source, at if at is not None else time.time()).fail(reason)


def identity_keys(identity: Section) -> dict[str, str]:
    """The stable-identity candidates present in the identity section."""
    keys: dict[str, str] = {}
    for key in ("machine_id", "smbios_uuid", "serial"):
        value = identity.fields.get(key)
        if isinstance(value, str) and value.strip():
            keys[key] = value.strip()
    return keys


def document(host: str, platform: str, sections: Iterable[Section],
             collected_at: float) -> dict[str, Any]:
    """The contract document: every category present, in :data:`CATEGORIES` order."""
    by_name = {s.name: s for s in sections}
    for name in CATEGORIES:
        if name not in by_name:
            by_name[name] = failed(name, "docs.collect", "the collector produced no section",
                                   collected_at)
    identity = by_name["identity"]
    return {
        "schema_version": SCHEMA_VERSION,
        "host": host,
        "collected_at": collected_at,
        "platform": platform,
        "identity_keys": {} if identity.reason else identity_keys(identity),
        "sections": {name: by_name[name].to_dict() for name in CATEGORIES},
    }


def tally(doc: dict[str, Any]) -> tuple[int, list[str], list[str]]:
    """(categories documented, failed categories, and those not applicable, with none
    reported or not collected by choice)."""
    failures, not_applicable, ok = [], [], 0
    for name, sec in doc["sections"].items():
        reason = sec.get("unavailable")
        if reason is None:
            ok += 1
        elif str(reason).startswith((NOT_APPLICABLE, NONE_REPORTED, NOT_COLLECTED)):
            not_applicable.append(name)
        else:
            failures.append(name)
    return ok, failures, not_applicable
