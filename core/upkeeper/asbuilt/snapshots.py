"""Fact snapshots in the history database: one row per collected fact document, keyed by
the host's stable identity, and the approved baselines.

Snapshots are taken from stored results (any check whose ``details["facts"]`` is a fact
document), newest result id remembered, so ingesting is idempotent and cheap: the
after-run step calls :func:`ingest` after every run and ``docs build`` calls it again
for results stored by runs that had no after-run step (a hub, an old run).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from upkeeper.asbuilt.categories import (
    FACTS_SCHEMA_VERSION,
    category_table,
    stable_identity,
)

if TYPE_CHECKING:
    from upkeeper.store.history import History

log = logging.getLogger("upkeeper.asbuilt")

NO_CLIENT = "(no client)"
#: The check that collects the built-in categories: its sections win over a plugin's.
PRIMARY_SOURCE = "docs.collect"
_CURSOR = "ingested_result_id"

SCHEMA = """
CREATE TABLE IF NOT EXISTS asbuilt_snapshots (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL,
    weak INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL,
    host TEXT NOT NULL,
    client TEXT NOT NULL,
    first_at REAL NOT NULL,
    collected_at REAL NOT NULL,
    result_id INTEGER,
    uuid TEXT,
    shash TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS asbuilt_snapshots_latest
    ON asbuilt_snapshots(identity, source, first_at);
CREATE INDEX IF NOT EXISTS asbuilt_snapshots_time ON asbuilt_snapshots(first_at);
CREATE TABLE IF NOT EXISTS asbuilt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS asbuilt_baselines (
    client TEXT NOT NULL,
    identity TEXT NOT NULL,
    approved_at REAL NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (client, identity)
);
CREATE TABLE IF NOT EXISTS asbuilt_approvals (
    client TEXT PRIMARY KEY,
    approved_at REAL NOT NULL,
    as_of REAL NOT NULL,
    hosts INTEGER NOT NULL
);
"""

#: Masks secrets by key name in nested data (core passes
#: ``upkeeper.engine.secrets.mask_secret_data``); required, so nothing is stored unmasked.
Mask = Callable[[Any], Any]
#: Host name -> its client (the inventory's ``client`` var as remembered), or None.
ClientOf = Callable[[str], "str | None"]


@dataclass
class HostDoc:
    """A host's facts at one time: the newest snapshot of each source, merged."""

    identity: str
    weak: bool
    host: str
    client: str
    platform: str
    collected_at: float
    sections: dict[str, Any]
    aliases: tuple[str, ...] = ()


_OPENED: weakref.WeakSet[History] = weakref.WeakSet()


def open_tables(history: History) -> None:
    """Create this feature's tables on ``history``'s connection (once per connection)."""
    if history in _OPENED:
        return
    with history.transaction() as db:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
    _OPENED.add(history)


def valid_facts(details: Any) -> Mapping[str, Any] | None:
    """The fact document in a result's details, or None when there is none we can read."""
    facts = details.get("facts") if isinstance(details, Mapping) else None
    if not isinstance(facts, Mapping) or not isinstance(facts.get("sections"), Mapping):
        return None
    if facts.get("schema_version") != FACTS_SCHEMA_VERSION:
        return None
    return facts


@dataclass
class _Prepared:
    identity: str
    weak: bool
    uuid: str | None
    source: str
    host: str
    client: str
    when: float
    shash: str
    text: str


def _prepare(doc: Mapping[str, Any], source: str, client: str | None, mask: Mask,
             collected_at: float | None) -> _Prepared:
    """The masked document and its keys, computed outside any transaction."""
    identity, weak = stable_identity(doc)
    clean = mask(dict(doc))
    when = collected_at if collected_at is not None else float(doc.get("collected_at") or 0)
    host, client = str(doc.get("host") or ""), client or NO_CLIENT
    return _Prepared(identity, weak, smbios_uuid(doc), source, host, client, when,
                     structural_hash(host, client, clean),
                     json.dumps(clean, sort_keys=True, default=str))


def _insert(db: sqlite3.Connection, p: _Prepared, result_id: int | None) -> str:
    identity = p.identity
    if p.uuid and identity.startswith("machine-id:"):
        identity = _clone_identity(db, identity, p.uuid)
    last = db.execute(
        "SELECT id, shash, collected_at FROM asbuilt_snapshots WHERE identity=? AND"
        " source=? ORDER BY first_at DESC, id DESC LIMIT 1", (identity, p.source)).fetchone()
    if last is not None and last[1] == p.shash and p.when >= last[2]:
        # Nothing structural changed: the newest row takes this collection's volatile
        # values and time, so history grows with changes, not with runs.
        db.execute("UPDATE asbuilt_snapshots SET collected_at=?, result_id=?, uuid=?,"
                   " doc=? WHERE id=?", (p.when, result_id, p.uuid, p.text, last[0]))
    else:
        db.execute(
            "INSERT INTO asbuilt_snapshots (identity, weak, source, host, client,"
            " first_at, collected_at, result_id, uuid, shash, doc)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (identity, int(p.weak), p.source, p.host, p.client, p.when, p.when, result_id,
             p.uuid, p.shash, p.text))
    return identity


def store_doc(history: History, doc: Mapping[str, Any], *, source: str, client: str | None,
              mask: Mask, result_id: int | None = None,
              collected_at: float | None = None) -> str:
    """Store one fact document (masked) as a snapshot; returns its identity."""
    open_tables(history)
    prepared = _prepare(doc, source, client, mask, collected_at)
    with history.transaction() as db:
        return _insert(db, prepared, result_id)


def structural_hash(host: str, client: str, doc: Mapping[str, Any]) -> str:
    """What makes a new snapshot row: the name, client and every section without its
    metadata and the built-in categories' volatile fields."""
    table = category_table()
    shape: dict[str, Any] = {}
    sections = doc.get("sections")
    for key, section in sorted((sections if isinstance(sections, Mapping) else {}).items()):
        if not isinstance(section, Mapping):
            shape[key] = section
            continue
        cat = table.get(key)
        volatile = set(cat.volatile) if cat else set()
        part: dict[str, Any] = {"unavailable": section.get("unavailable")}
        if isinstance(section.get("fields"), Mapping):
            part["fields"] = {k: v for k, v in section["fields"].items() if k not in volatile}
        if isinstance(section.get("items"), list):
            part["items"] = [{k: v for k, v in i.items() if k not in volatile}
                             if isinstance(i, Mapping) else i for i in section["items"]]
        shape[key] = part
    data = json.dumps([host, client, doc.get("platform"), shape], sort_keys=True,
                      default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def smbios_uuid(doc: Mapping[str, Any]) -> str | None:
    keys = doc.get("identity_keys")
    value = keys.get("smbios_uuid") if isinstance(keys, Mapping) else None
    return value.strip().lower() if isinstance(value, str) and value.strip() else None


def _clone_identity(db: sqlite3.Connection, identity: str, uuid: str) -> str:
    """VMs cloned from a template that was not generalised share a machine id but not an
    SMBIOS UUID: the first keeps the machine id, each other one gets ``+uuid:<uuid>``, so
    two machines never merge (and one machine keeps its key when sudo comes and goes)."""
    pattern = re.sub(r"([\\%_])", r"\\\1", identity) + "+uuid:%"
    rows = db.execute("SELECT DISTINCT identity, uuid FROM asbuilt_snapshots WHERE"
                      " (identity = ? OR identity LIKE ? ESCAPE '\\') AND uuid IS NOT NULL"
                      " ORDER BY identity", (identity, pattern)).fetchall()
    for known, known_uuid in rows:
        if known_uuid == uuid:
            return str(known)
    return f"{identity}+uuid:{uuid}" if rows else identity


def ingest(history: History, *, mask: Mask, client_of: ClientOf, batch: int = 200) -> int:
    """Snapshot every fact document in results stored since the last ingest; returns
    how many. Each snapshot and the ingest cursor move in one transaction, so a crash
    or a second ingester at the same time (``serve`` and ``docs build``) never stores a
    result twice. A result whose facts cannot be read is skipped with one warning."""
    open_tables(history)
    done = 0
    while True:
        cursor = _cursor(history)
        rows = history.query(
            "SELECT id, host, check_name, details, ts FROM results WHERE id > ?"
            " ORDER BY id LIMIT ?", (cursor, batch))
        if not rows:
            return done
        for row in rows:
            if not row["details"] or '"facts"' not in row["details"]:
                continue
            try:
                facts = valid_facts(json.loads(row["details"]))
            except ValueError:
                facts = None
            if facts is None:
                log.warning("result %s of %s on %s: its facts are not a fact document"
                            " (schema_version %s); not documented", row["id"],
                            row["check_name"], row["host"], FACTS_SCHEMA_VERSION)
                continue
            prepared = _prepare({**facts, "host": facts.get("host") or row["host"]},
                                row["check_name"], client_of(row["host"]), mask,
                                float(facts.get("collected_at") or row["ts"]))
            with history.transaction() as db:
                if _cursor_in(db) >= row["id"]:
                    continue  # another ingester took it meanwhile
                _insert(db, prepared, row["id"])
                _set_cursor(db, row["id"])
            done += 1
        with history.transaction() as db:
            _set_cursor(db, rows[-1]["id"])


def _cursor(history: History) -> int:
    rows = history.query("SELECT value FROM asbuilt_meta WHERE key=?", (_CURSOR,))
    return int(rows[0][0]) if rows else 0


def _cursor_in(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM asbuilt_meta WHERE key=?", (_CURSOR,)).fetchone()
    return int(row[0]) if row else 0


def _set_cursor(db: sqlite3.Connection, result_id: int) -> None:
    db.execute("INSERT INTO asbuilt_meta (key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE"
               " SET value=MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
               (_CURSOR, str(result_id)))


def latest_time(history: History) -> float | None:
    """When the newest snapshot was collected (the documents' "as of")."""
    open_tables(history)
    rows = history.query("SELECT MAX(collected_at) FROM asbuilt_snapshots")
    return float(rows[0][0]) if rows and rows[0][0] is not None else None


def docs_at(history: History, at: float, client: str | None = None,
            hosts: Collection[str] | None = None) -> dict[str, HostDoc]:
    """Every host's facts as known at ``at``: the newest snapshot of each source up to
    then, merged (``docs.collect`` first). The client and name are the newest
    snapshot's; only the chosen client's documents (of ``hosts``, by that name, when
    given) are read and decoded."""
    open_tables(history)
    rows = history.query(
        "SELECT id, identity, weak, source, host, client, collected_at FROM (SELECT id,"
        " identity, weak, source, host, client, collected_at, ROW_NUMBER() OVER (PARTITION"
        " BY identity, source ORDER BY first_at DESC, id DESC) AS rn FROM asbuilt_snapshots"
        " WHERE first_at <= ?) WHERE rn = 1 ORDER BY identity, source != ?, source",
        (at, PRIMARY_SOURCE))
    newest: dict[str, Any] = {}
    for row in rows:
        known = newest.get(row["identity"])
        if known is None or min(row["collected_at"], at) > min(known["collected_at"], at):
            newest[row["identity"]] = row
    wanted = {i for i, row in newest.items() if (client is None or row["client"] == client)
              and (hosts is None or row["host"] in hosts)}
    texts = _doc_texts(history, [r["id"] for r in rows if r["identity"] in wanted])
    names = _names(history, at)
    out: dict[str, HostDoc] = {}
    for row in rows:
        identity = row["identity"]
        if identity not in wanted:
            continue
        doc = json.loads(texts[row["id"]])
        hd = out.get(identity)
        if hd is None:
            top = newest[identity]
            hd = out[identity] = HostDoc(
                identity, bool(top["weak"]), top["host"], top["client"],
                str(doc.get("platform") or ""), min(float(top["collected_at"]), at), {},
                tuple(n for n in names.get(identity, ()) if n != top["host"]))
        for key, section in (doc.get("sections") or {}).items():
            hd.sections.setdefault(str(key), section)
    return out


def _doc_texts(history: History, ids: list[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in history.query(f"SELECT id, doc FROM asbuilt_snapshots WHERE id IN ({marks})",
                                 tuple(chunk)):
            out[row[0]] = row[1]
    return out


def _names(history: History, at: float) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in history.query("SELECT DISTINCT identity, host FROM asbuilt_snapshots"
                             " WHERE first_at <= ? ORDER BY identity, host", (at,)):
        out.setdefault(row[0], []).append(row[1])
    return out


def clients(history: History) -> list[str]:
    """Every client with documented hosts (by each host's newest snapshot), sorted."""
    open_tables(history)
    rows = history.query(
        "SELECT DISTINCT client FROM (SELECT client, ROW_NUMBER() OVER (PARTITION BY"
        " identity ORDER BY first_at DESC, id DESC) AS rn FROM asbuilt_snapshots)"
        " WHERE rn = 1")
    return sorted((r[0] for r in rows), key=lambda c: (c == NO_CLIENT, c))


def hosts_of(docs: Iterable[HostDoc]) -> list[HostDoc]:
    """Hosts sorted for display: by name, then identity (two hosts may share a name)."""
    return sorted(docs, key=lambda d: (d.host.lower(), d.host, d.identity))
