"""What the dashboard's pages show, read from history: the clients of hosts, the current
state of each (host, check), series for charts, runs and their results. Every function
takes the hosts a user may see, so scoping is applied in the query, not after it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from upkeeper.after_run.clients import CLIENT_STATE
from upkeeper.models import Status
from upkeeper.store.history import History

UTC = timezone.utc
NO_CLIENT = "(no client)"
SEVERITY = {s.value: s.severity for s in Status}


def worst(statuses: Iterable[str]) -> str:
    """The worst of ``statuses`` (monitoring order: CRIT > UNKNOWN > WARN > OK)."""
    out = "OK"
    for s in statuses:
        if SEVERITY.get(s, 0) > SEVERITY.get(out, 0):
            out = s
    return out


@dataclass
class Cell:
    """The current state of one check on one host."""

    host: str
    check: str
    name: str
    status: str
    summary: str
    ts: float
    run_id: str
    result_id: int
    stale: bool = False

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.ts, tz=UTC)

    @property
    def problem(self) -> bool:
        return SEVERITY.get(self.status, 0) >= Status.WARN.severity


@dataclass
class ClientView:
    """One client's hosts and their current state."""

    name: str
    hosts: list[str]
    cells: list[Cell] = field(default_factory=list)

    @property
    def worst(self) -> str:
        return worst(c.status for c in self.cells) if self.cells else "UNKNOWN"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.cells:
            out[c.status] = out.get(c.status, 0) + 1
        return out

    @property
    def problems(self) -> list[Cell]:
        return sorted((c for c in self.cells if c.problem),
                      key=lambda c: (-SEVERITY.get(c.status, 0), c.host, c.name))


def host_clients(history: History) -> dict[str, str]:
    """Every host seen in history and its client (``NO_CLIENT`` when none was given)."""
    out = {r[0]: NO_CLIENT for r in history.query("SELECT DISTINCT host FROM state")}
    for r in history.query("SELECT host, value FROM state WHERE check_name=? AND key=?",
                           CLIENT_STATE):
        out[r["host"]] = str(json.loads(r["value"]))
    return out


def current(history: History, hosts: Sequence[str] | None = None) -> list[Cell]:
    """The latest result of every (host, result name), from any playbook."""
    where, args = "", ()
    if hosts is not None:
        if not hosts:
            return []
        where = f" WHERE host IN ({','.join('?' * len(hosts))})"
        args = tuple(hosts)
    rows = history.query(
        "SELECT r.id, r.host, r.check_name, r.name, r.status, r.summary, r.ts, r.run_id"
        " FROM results r JOIN (SELECT MAX(id) AS id FROM results"
        f"{where} GROUP BY host, name) m ON m.id = r.id", args)
    return [Cell(r["host"], r["check_name"], r["name"], r["status"], r["summary"], r["ts"],
                 r["run_id"], r["id"]) for r in rows]


def clients(history: History, visible: Iterable[str] | None = None) -> list[ClientView]:
    """Clients (all, or the ``visible`` ones) with their hosts' current state, problems
    first."""
    by_client: dict[str, ClientView] = {}
    wanted = set(visible) if visible is not None else None
    for host, client in sorted(host_clients(history).items()):
        if wanted is not None and client not in wanted:
            continue
        by_client.setdefault(client, ClientView(client, [])).hosts.append(host)
    hosts = [h for v in by_client.values() for h in v.hosts]
    client_of = {h: v for v in by_client.values() for h in v.hosts}
    for cell in current(history, hosts if wanted is not None else None):
        if cell.host in client_of:
            client_of[cell.host].cells.append(cell)
    return sorted(by_client.values(), key=lambda v: (-SEVERITY.get(v.worst, 0), v.name))


def last_runs(history: History, hosts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The newest run of each playbook (of those that touched ``hosts``)."""
    from upkeeper.store.runs import list_runs

    names = [r[0] for r in history.query("SELECT DISTINCT playbook FROM runs ORDER BY 1")]
    out = []
    for name in names:
        found = list_runs(history, limit=1, playbooks=[name],
                          hosts=list(hosts) if hosts is not None else None)
        out += found
    return out


def series(history: History, host: str, metric: str, since: float) -> list[tuple[float, float]]:
    rows = history.query("SELECT ts, value FROM metrics WHERE host=? AND metric=? AND ts>=?"
                         " ORDER BY ts", (host, metric, since))
    return [(r[0], r[1]) for r in rows]


def metric_names(history: History, host: str, since: float) -> dict[str, list[str]]:
    """Metric names per check on ``host`` recorded since ``since``."""
    rows = history.query("SELECT check_name, metric FROM metrics WHERE host=? AND ts>=?"
                         " GROUP BY check_name, metric ORDER BY 1, 2", (host, since))
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r[0], []).append(r[1])
    return out


def latest_metrics(history: History, result_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    return history._metrics_of(list(result_ids))


def timeline(history: History, host: str, name: str, since: float) -> list[tuple[float, str]]:
    """(time, status) of every result of ``name`` on ``host`` since ``since``."""
    rows = history.query("SELECT ts, status FROM results WHERE host=? AND name=? AND ts>=?"
                         " ORDER BY ts", (host, name, since))
    return [(r[0], r[1]) for r in rows]


def last_results(history: History, host: str, limit: int = 200) -> list[dict[str, Any]]:
    from upkeeper.store.runs import find_results

    return find_results(history, host=host, limit=limit)


def run_results(history: History, run_id: str, hosts: Sequence[str] | None,
                after: int = 0) -> list[dict[str, Any]]:
    """A run's results (of ``hosts``) with ids above ``after``, oldest first."""
    sql = ("SELECT id, host, name, status, summary, ts, duration FROM results"
           " WHERE run_id=? AND id>?")
    args: tuple[Any, ...] = (run_id, after)
    if hosts is not None:
        sql += f" AND host IN ({','.join('?' * len(hosts))})"
        args += tuple(hosts)
    rows = history.query(sql + " ORDER BY id", args)
    return [{"id": r["id"], "host": r["host"], "name": r["name"], "status": r["status"],
             "summary": r["summary"],
             "time": datetime.fromtimestamp(r["ts"], tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
             "duration": round(r["duration"], 2)} for r in rows]


def run_row(history: History, run_id: str) -> dict[str, Any] | None:
    rows = history.query("SELECT * FROM runs WHERE id=?", (run_id,))
    if not rows:
        return None
    r = rows[0]
    status = r["status"] or ("RUNNING" if r["finished"] is None and not r["interrupted"]
                             else "UNKNOWN")
    return {"run_id": r["id"], "playbook": r["playbook"], "status": status,
            "started": datetime.fromtimestamp(r["started"], tz=UTC),
            "finished": datetime.fromtimestamp(r["finished"], tz=UTC) if r["finished"]
            else None, "meta": json.loads(r["meta"] or "{}")}


def run_hosts(history: History, run_id: str) -> set[str]:
    """Hosts of a run: those with results and those the run recorded a client for."""
    hosts = {r[0] for r in history.query("SELECT DISTINCT host FROM results WHERE run_id=?",
                                         (run_id,))}
    meta = history.query("SELECT meta FROM runs WHERE id=?", (run_id,))
    if meta:
        hosts |= set((json.loads(meta[0][0] or "{}").get("clients") or {}).keys())
    return hosts
