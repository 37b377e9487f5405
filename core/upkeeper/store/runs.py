"""Finding runs and results: by run id, playbook (name or file) and client, with the
known values listed when a filter names nothing (``upkeeper runs`` / ``history``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any

from upkeeper.store.history import History

UTC = timezone.utc


class NotFound(LookupError):
    """A filter value that matches nothing; the message lists the known values."""


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def _listing(values: Iterable[str], limit: int = 30) -> str:
    known = sorted(set(values))
    if not known:
        return "none recorded yet"
    more = f" (and {len(known) - limit} more)" if len(known) > limit else ""
    return ", ".join(known[:limit]) + more


def playbook_names(history: History, given: str) -> list[str]:
    """Playbook names matching ``given``: the name, the file as run, its file name or
    stem. :raises NotFound: listing the known playbooks."""
    rows = history.query("SELECT DISTINCT playbook, json_extract(meta, '$.playbook_path')"
                         " AS path FROM runs")
    names = set()
    for r in rows:
        path = r["path"] or ""
        if given in (r["playbook"], path, PurePath(path).name, PurePath(path).stem):
            names.add(r["playbook"])
    if not names:
        files = {PurePath(r["path"]).name for r in rows if r["path"]}
        raise NotFound(f"no runs of playbook {given!r}; known playbooks:"
                       f" {_listing({r['playbook'] for r in rows} | files)}")
    return sorted(names)


def client_hosts(history: History, client: str) -> list[str]:
    """Hosts recorded for ``client``. :raises NotFound: listing the clients present."""
    rows = history.query("SELECT DISTINCT c.key AS host, c.value AS client FROM runs,"
                         " json_each(runs.meta, '$.clients') AS c")
    hosts = sorted({r["host"] for r in rows if str(r["client"]) == client})
    if not hosts:
        raise NotFound(f"no client {client!r} in history; clients present:"
                       f" {_listing(str(r['client']) for r in rows)}")
    return hosts


def require_run(history: History, run_id: str) -> None:
    """:raises NotFound: no run has this id (the newest ids are listed)."""
    if history.query("SELECT 1 FROM runs WHERE id=?", (run_id,)):
        return
    recent = [r[0] for r in history.query("SELECT id FROM runs ORDER BY started DESC"
                                          " LIMIT 5")]
    hint = f"; newest runs: {', '.join(recent)}" if recent else "; no runs recorded yet"
    raise NotFound(f"no run {run_id!r} in history{hint} (see 'upkeeper runs')")


def list_runs(history: History, *, limit: int = 20, playbooks: list[str] | None = None,
              hosts: list[str] | None = None) -> list[dict[str, Any]]:
    """Newest first: id, playbook, started, finished, status, result counts, hosts."""
    where, args = "", []
    if playbooks is not None:
        where += f" AND runs.playbook IN ({','.join('?' * len(playbooks))})"
        args += playbooks
    if hosts is not None:
        where += (" AND EXISTS (SELECT 1 FROM results x WHERE x.run_id=runs.id AND x.host"
                  f" IN ({','.join('?' * len(hosts))}))")
        args += hosts
    rows = history.query(f"SELECT * FROM runs WHERE 1=1{where} ORDER BY started DESC"
                         " LIMIT ?", (*args, limit))
    ids = [r["id"] for r in rows]
    counts: dict[str, dict[str, int]] = {i: {} for i in ids}
    nhosts: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for c in history.query("SELECT run_id, status, COUNT(*) AS n FROM results WHERE"
                               f" run_id IN ({marks}) GROUP BY run_id, status", tuple(chunk)):
            counts[c["run_id"]][c["status"]] = c["n"]
        for c in history.query("SELECT run_id, COUNT(DISTINCT host) AS n FROM results WHERE"
                               f" run_id IN ({marks}) GROUP BY run_id", tuple(chunk)):
            nhosts[c["run_id"]] = c["n"]
    out = []
    for r in rows:
        meta = json.loads(r["meta"] or "{}")
        status = r["status"] or ("RUNNING" if r["finished"] is None and not r["interrupted"]
                                 else "UNKNOWN")
        out.append({"run_id": r["id"], "playbook": r["playbook"],
                    "playbook_path": meta.get("playbook_path"),
                    "started": _iso(r["started"]), "finished": _iso(r["finished"]),
                    "status": status, "interrupted": bool(r["interrupted"]),
                    "check_mode": bool(r["check_mode"]),
                    "trigger": meta.get("trigger", "run"), "counts": counts[r["id"]],
                    "hosts": nhosts.get(r["id"], 0)})
    return out


def find_results(history: History, *, host: str | None = None, check: str | None = None,
                 run_id: str | None = None, playbooks: list[str] | None = None,
                 hosts: list[str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Stored results, newest first, each with its run id and metrics."""
    sql = ("SELECT res.*, runs.playbook FROM results res JOIN runs ON runs.id=res.run_id"
           " WHERE 1=1")
    args: list[Any] = []
    for col, val in (("res.host", host), ("res.check_name", check), ("res.run_id", run_id)):
        if val:
            sql += f" AND {col}=?"
            args.append(val)
    if playbooks is not None:
        sql += f" AND runs.playbook IN ({','.join('?' * len(playbooks))})"
        args += playbooks
    if hosts is not None:
        sql += f" AND res.host IN ({','.join('?' * len(hosts))})"
        args += hosts
    rows = history.query(sql + " ORDER BY res.ts DESC, res.id DESC LIMIT ?", (*args, limit))
    metrics = history._metrics_of([r["id"] for r in rows])
    return [{"time": _iso(r["ts"]), "run_id": r["run_id"], "playbook": r["playbook"],
             "host": r["host"], "check": r["check_name"], "name": r["name"],
             "status": r["status"], "summary": r["summary"],
             "metrics": metrics.get(r["id"], {}),
             "details": json.loads(r["details"]) if r["details"] else None,
             "changed": bool(r["changed"]), "duration_s": round(r["duration"], 3)}
            for r in rows]
