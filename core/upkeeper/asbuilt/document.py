"""The client document as data: hosts with their facts and health, what changed since a
date, drift from the approved baseline. ``docs.json`` is this data; HTML, Markdown and
CSV are drawn from it. Everything is sorted and dated by the snapshots, never by the
clock, so the same snapshots give the same document.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from upkeeper.asbuilt import baseline, snapshots
from upkeeper.asbuilt.categories import DocCategory, category_table, guess_category
from upkeeper.asbuilt.changes import Change, compare
from upkeeper.asbuilt.health import CERT_DAYS, STALE_DAYS, Finding, findings
from upkeeper.asbuilt.snapshots import HostDoc, hosts_of

if TYPE_CHECKING:
    from upkeeper.store.history import History

#: Version of docs.json (and of ``upkeeper docs schema``).
DOCS_SCHEMA_VERSION = 1


SCHEMA_FILE = Path(__file__).parent / "docs.schema.json"


def schema_text() -> str:
    """The published JSON Schema of docs.json (``upkeeper docs schema``)."""
    return SCHEMA_FILE.read_text(encoding="utf-8")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def previous_month_start(ts: float) -> float:
    """00:00 UTC on the first day of the month before ``ts``'s month."""
    d = datetime.fromtimestamp(ts, tz=timezone.utc)
    year, month = (d.year, d.month - 1) if d.month > 1 else (d.year - 1, 12)
    return datetime(year, month, 1, tzinfo=timezone.utc).timestamp()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")[:60] or "_"


def host_slug(doc: HostDoc) -> str:
    """A file name unique per identity (two hosts may share a name), stable across
    renames only in its hash part."""
    digest = hashlib.sha256(doc.identity.encode()).hexdigest()[:10]
    return f"{slug(doc.host)}-{digest}"


@dataclass
class ClientDocument:
    """One client's as-built document (see :func:`build_client`)."""

    name: str
    as_of: float
    since: float
    hosts: list[HostDoc]
    changes: list[Change]
    findings: list[Finding]
    baseline_at: float | None = None
    drift: list[Change] = field(default_factory=list)
    _grouped: dict[str, dict[str, list[Any]]] = field(default_factory=dict, repr=False)

    def findings_of(self, identity: str) -> list[Finding]:
        return self._by_host("findings").get(identity, [])

    def changes_of(self, identity: str) -> list[Change]:
        return self._by_host("changes").get(identity, [])

    def drift_of(self, identity: str) -> list[Change]:
        return self._by_host("drift").get(identity, [])

    def _by_host(self, what: str) -> dict[str, list[Any]]:
        """``findings``, ``changes`` or ``drift`` grouped by host identity, once."""
        cached = self._grouped.get(what)
        if cached is None:
            cached = self._grouped[what] = {}
            for entry in getattr(self, what):
                cached.setdefault(entry.identity, []).append(entry)
        return cached

    def index_json(self) -> dict[str, Any]:
        """docs.json: the client, its hosts (facts in ``hosts/<slug>.json``), changes,
        drift and health."""
        return {
            "schema_version": DOCS_SCHEMA_VERSION,
            "client": self.name,
            "as_of": iso(self.as_of),
            "changes_since": iso(self.since),
            "hosts": [{"id": h.identity, "weak_identity": h.weak, "name": h.host,
                       "aliases": list(h.aliases), "platform": h.platform,
                       "last_seen": iso(h.collected_at), "facts": f"hosts/{host_slug(h)}.json",
                       "summary": host_summary(h)} for h in self.hosts],
            "changes": [c.to_json() for c in self.changes],
            "baseline": None if self.baseline_at is None else {
                "approved_at": iso(self.baseline_at),
                "differences": [c.to_json() for c in self.drift]},
            "health": [f.to_json() for f in self.findings],
        }

    def host_json(self, doc: HostDoc) -> dict[str, Any]:
        return {"schema_version": DOCS_SCHEMA_VERSION, "client": self.name,
                "id": doc.identity, "weak_identity": doc.weak, "name": doc.host,
                "aliases": list(doc.aliases), "platform": doc.platform,
                "last_seen": iso(doc.collected_at),
                "sections": {k: doc.sections[k] for k in sorted(doc.sections)},
                "health": [f.to_json() for f in self.findings_of(doc.identity)]}


def _field(doc: HostDoc, section: str, name: str) -> Any:
    data = doc.sections.get(section)
    fields = data.get("fields") if isinstance(data, Mapping) else None
    value = fields.get(name) if isinstance(fields, Mapping) else None
    return None if isinstance(value, Mapping) else value


def host_summary(doc: HostDoc) -> dict[str, Any]:
    """The few facts of the hosts table and hosts.csv."""
    addresses: list[str] = []
    section = doc.sections.get("interfaces")
    for item in (section.get("items") or []) if isinstance(section, Mapping) else []:
        if isinstance(item, Mapping) and isinstance(item.get("addresses"), list):
            addresses += [str(a) for a in item["addresses"]]
    return {
        "os": " ".join(str(v) for v in (_field(doc, "os", "name"),
                                        _field(doc, "os", "version")) if v),
        "addresses": sorted(set(addresses)),
        "manufacturer": _field(doc, "identity", "manufacturer"),
        "model": _field(doc, "identity", "model"),
        "serial": _field(doc, "identity", "serial"),
        "virtual": _field(doc, "identity", "virtual"),
        "cpu": _field(doc, "hardware", "cpu_model"),
        "ram_bytes": _field(doc, "hardware", "ram_bytes"),
    }


def ordered_categories(doc: HostDoc,
                       table: Mapping[str, DocCategory]) -> list[tuple[DocCategory, Any]]:
    """The host's sections with their category, in display order."""
    pairs = [(table.get(k) or guess_category(k, v if isinstance(v, Mapping) else {}), v)
             for k, v in doc.sections.items()]
    return sorted(pairs, key=lambda p: (p[0].order, p[0].key))


def build_client(history: History, client: str, *, as_of: float, since: float,
                 categories: Iterable[DocCategory] = (), cert_days: int = CERT_DAYS,
                 stale_days: int = STALE_DAYS) -> ClientDocument:
    """Everything one client's document shows, from the snapshots in ``history``."""
    table = category_table(categories)
    latest = snapshots.docs_at(history, as_of, client)
    old = snapshots.docs_at(history, since, client)
    vanished = {i: d for i, d in latest.items() if i in old and d.collected_at <= since}
    current = {i: d for i, d in latest.items() if i not in vanished}
    changes = compare(old, current, table, vanished=vanished)
    docs = ClientDocument(client, as_of, since, hosts_of(latest.values()), changes,
                          findings(latest.values(), as_of, history, cert_days=cert_days,
                                   stale_days=stale_days))
    approved = baseline.approved(history, client)
    if approved is not None:
        docs.baseline_at, base = approved
        docs.drift = compare(base, latest, table)
    return docs


def iter_documents(history: History, clients: Sequence[str] | None = None, *,
                   as_of: float | None = None, since: float | None = None,
                   categories: Iterable[DocCategory] = (), cert_days: int = CERT_DAYS,
                   stale_days: int = STALE_DAYS) -> Iterator[ClientDocument]:
    """Documents of ``clients`` (default: every client with documented hosts), one at a
    time, so a writer holds one client's facts in memory, not the whole fleet's."""
    snapshots.open_tables(history)
    when = as_of if as_of is not None else snapshots.latest_time(history)
    if when is None:
        return
    start = since if since is not None else previous_month_start(when)
    names = list(clients) if clients is not None else snapshots.clients(history)
    cats = list(categories)
    for name in names:
        yield build_client(history, name, as_of=when, since=start, categories=cats,
                           cert_days=cert_days, stale_days=stale_days)


def build_all(history: History, clients: Sequence[str] | None = None,
              **options: Any) -> list[ClientDocument]:
    """:func:`iter_documents` as a list."""
    return list(iter_documents(history, clients, **options))
