"""Which stored run a one-run client report should use: the latest run that has results
for that client (a one-host ad hoc rerun on another client's host is passed over)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from upkeeper.monthly.state import host_clients

if TYPE_CHECKING:
    from upkeeper.store.history import History

__all__ = ["latest_run_for_client"]

#: Runs looked at, newest first, before giving up.
SCAN = 1000


def latest_run_for_client(history: History, client: str, playbook: str | None = None,
                          scan: int = SCAN) -> str | None:
    """The id of the newest run (of ``playbook``, if given) with a result on a host of
    ``client``, by the run's own host -> client map, else the remembered clients."""
    remembered = {h for h, c in host_clients(history).items() if c == client}
    sql = "SELECT id, meta FROM runs"
    args: tuple[object, ...] = ()
    if playbook:
        sql, args = sql + " WHERE playbook=?", (playbook,)
    for row in history.query(sql + " ORDER BY started DESC LIMIT ?", (*args, scan)):
        try:
            meta = json.loads(row["meta"] or "{}")
        except ValueError:
            meta = {}
        mapping = meta.get("clients") if isinstance(meta, dict) else None
        hosts = set(remembered)
        if isinstance(mapping, dict):
            hosts |= {str(h) for h, c in mapping.items() if str(c) == client}
        if not hosts:
            continue
        chosen = sorted(hosts)[:500]
        marks = ",".join("?" * len(chosen))
        if history.query(f"SELECT 1 FROM results WHERE run_id=? AND host IN ({marks})"
                         " LIMIT 1", (row["id"], *chosen)):
            return str(row["id"])
    return None
