"""Approved baselines: a client's documented state recorded as approved (``docs baseline
approve``), which every later document is compared with (drift)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from upkeeper.asbuilt.snapshots import HostDoc, docs_at, open_tables

if TYPE_CHECKING:
    from upkeeper.store.history import History


def approve(history: History, client: str, *, as_of: float, approved_at: float) -> int:
    """Record ``client``'s current facts as its approved baseline (replacing the last
    one); returns the number of hosts."""
    open_tables(history)
    docs = docs_at(history, as_of, client)
    with history.transaction() as db:
        db.execute("DELETE FROM asbuilt_baselines WHERE client=?", (client,))
        db.executemany(
            "INSERT INTO asbuilt_baselines (client, identity, approved_at, doc)"
            " VALUES (?,?,?,?)",
            [(client, d.identity, approved_at, json.dumps(_to_json(d), sort_keys=True))
             for d in docs.values()])
        db.execute("INSERT INTO asbuilt_approvals (client, approved_at, as_of, hosts)"
                   " VALUES (?,?,?,?) ON CONFLICT(client) DO UPDATE SET"
                   " approved_at=excluded.approved_at, as_of=excluded.as_of,"
                   " hosts=excluded.hosts", (client, approved_at, as_of, len(docs)))
    return len(docs)


def approved(history: History, client: str) -> tuple[float, dict[str, HostDoc]] | None:
    """The approved baseline of ``client``: (approved at, facts by identity), or None."""
    open_tables(history)
    rows = history.query("SELECT approved_at FROM asbuilt_approvals WHERE client=?",
                         (client,))
    if not rows:
        return None
    docs = [_from_json(json.loads(r["doc"])) for r in history.query(
        "SELECT doc FROM asbuilt_baselines WHERE client=? ORDER BY identity", (client,))]
    return float(rows[0][0]), {d.identity: d for d in docs}


def _to_json(d: HostDoc) -> dict[str, Any]:
    return {"identity": d.identity, "weak": d.weak, "host": d.host, "client": d.client,
            "platform": d.platform, "collected_at": d.collected_at, "sections": d.sections}


def _from_json(data: Mapping[str, Any]) -> HostDoc:
    return HostDoc(str(data["identity"]), bool(data["weak"]), str(data["host"]),
                   str(data["client"]), str(data["platform"]), float(data["collected_at"]),
                   dict(data["sections"]))
