"""What the dashboard's pages show, read from history: the current state (from
:mod:`upkeeper.monthly.state`) as a user may see it, series for charts, runs and their
results. Scoping is applied in the queries (hosts a user may see), not after them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from upkeeper.models import Status
from upkeeper.monthly.state import (
    NO_CLIENT,
    CheckState,
    ClientState,
    FleetState,
    HostState,
    current_state,
    host_clients,
)
from upkeeper.store.history import History
from upkeeper.web.auth import User

__all__ = ["NO_CLIENT", "SEVERITY", "client", "fleet", "host", "host_series", "last_runs",
           "problems", "run_results", "run_row", "run_visible_hosts", "runs",
           "scoped_status", "series", "timeline", "visible_hosts"]

UTC = timezone.utc
SEVERITY = {s.value: s.severity for s in Status}


def fleet(history: History, user: User) -> FleetState:
    """The current state of every client ``user`` may see, worst first."""
    state = current_state(history)
    if not user.scoped:
        return state
    return FleetState(state.now, tuple(c for c in state.clients if user.sees(c.name)))


def client(history: History, user: User, name: str) -> ClientState | None:
    """One client's current state, or None when it is unknown or not ``user``'s."""
    if not user.sees(name) or (name == NO_CLIENT and user.scoped):
        return None
    if name == NO_CLIENT:  # hosts without a client var: not selectable by client
        return current_state(history).client(name)
    return current_state(history, client=name).client(name)


def host(history: History, user: User, name: str) -> HostState | None:
    """One host's current state, or None when it is unknown or not ``user``'s."""
    found = current_state(history, host=name).host(name)
    if found is None or not user.sees(None if found.client == NO_CLIENT else found.client):
        return None
    return found


def visible_hosts(history: History, user: User) -> list[str] | None:
    """Hosts to restrict queries to (None: ``user`` sees every host)."""
    if not user.scoped:
        return None
    return sorted(h for h, c in host_clients(history).items() if user.sees(c))


def problems(state: ClientState) -> list[tuple[HostState, CheckState | None]]:
    """A client's problems, worst first: one entry for a host that is down, else one
    per problem check."""
    out: list[tuple[HostState, CheckState | None]] = []
    for h in state.hosts:
        if h.down:
            out.append((h, None))
        else:
            out += [(h, c) for c in h.problems]
    return out


def runs(history: History, user: User, *, limit: int = 100,
         playbook: str | None = None) -> list[dict[str, Any]]:
    """Runs newest first, as :func:`upkeeper.store.runs.list_runs` gives them; for a
    client-scoped user only runs over their clients' hosts (found by the clients each
    run records), with counts, hosts and status of those hosts alone."""
    from upkeeper.models import Status
    from upkeeper.store.runs import list_runs

    if not user.scoped:
        return list_runs(history, limit=limit, playbooks=[playbook] if playbook else None)
    clients = list(user.clients)
    sql = ("SELECT * FROM runs WHERE json_valid(meta) AND EXISTS (SELECT 1 FROM"
           " json_each(runs.meta, '$.clients') c WHERE c.value IN"
           f" ({','.join('?' * len(clients))}))")
    args: list[Any] = list(clients)
    if playbook is not None:
        sql += " AND playbook=?"
        args.append(playbook)
    rows = history.query(sql + " ORDER BY started DESC LIMIT ?", (*args, limit))
    out = []
    for r in rows:
        meta = json.loads(r["meta"])
        mine = sorted(h for h, c in (meta.get("clients") or {}).items()
                      if user.sees(str(c)))
        counts: dict[str, int] = {}
        for c in history.query(
                "SELECT status, COUNT(*) AS n FROM results WHERE run_id=? AND host IN"
                f" ({','.join('?' * len(mine))}) GROUP BY status", (r["id"], *mine)):
            counts[c["status"]] = c["n"]
        running = r["finished"] is None and not r["interrupted"]
        status = "RUNNING" if running else Status.worst(
            Status(s) for s in counts if s in SEVERITY).value
        out.append({"run_id": r["id"], "playbook": r["playbook"],
                    "playbook_path": meta.get("playbook_path"),
                    "started": _iso(r["started"]), "finished": _iso(r["finished"]),
                    "status": status, "interrupted": bool(r["interrupted"]),
                    "check_mode": bool(r["check_mode"]),
                    "trigger": meta.get("trigger", "run"), "counts": counts,
                    "hosts": len(mine)})
    return out


def last_runs(history: History, user: User) -> list[dict[str, Any]]:
    """The newest run of each playbook (that ``user`` may see)."""
    names = [r[0] for r in history.query("SELECT DISTINCT playbook FROM runs ORDER BY 1")]
    return [run for name in names for run in runs(history, user, limit=1, playbook=name)]


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC).isoformat()


def series(history: History, host: str, metric: str, since: float) -> list[tuple[float, float]]:
    rows = history.query("SELECT ts, value FROM metrics WHERE host=? AND metric=? AND ts>=?"
                         " ORDER BY ts", (host, metric, since))
    return [(r[0], r[1]) for r in rows]


def host_series(history: History, host: str, since: float
                ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Result name -> metric -> (time, value) points on ``host`` since ``since``, oldest
    first (by result name: several ``system.command`` checks are different series)."""
    rows = history.query("SELECT r.name, m.metric, m.ts, m.value FROM metrics m JOIN results"
                         " r ON r.id = m.result_id WHERE m.host=? AND m.ts>=? ORDER BY m.ts",
                         (host, since))
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in rows:
        out.setdefault(r[0], {}).setdefault(r[1], []).append((r[2], r[3]))
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
            else None, "meta": json.loads(r["meta"] or "{}"),
            "check_mode": bool(r["check_mode"])}


def scoped_status(history: History, run: dict[str, Any], hosts: Sequence[str]) -> str:
    """``run``'s status as told to a user who sees only ``hosts`` of it (the worst of
    their results, as :func:`runs` counts them): not another client's problem."""
    if run["status"] == "RUNNING" or not hosts:
        return str(run["status"])
    rows = history.query("SELECT DISTINCT status FROM results WHERE run_id=? AND host IN"
                         f" ({','.join('?' * len(hosts))})", (run["run_id"], *hosts))
    return Status.worst(Status(r[0]) for r in rows if r[0] in SEVERITY).value


def run_visible_hosts(history: History, run: dict[str, Any], user: User) -> list[str] | None:
    """The hosts of ``run`` that ``user`` may see (None: all of them). A run's hosts
    have clients from the run itself (known while it runs) or from history."""
    if not user.scoped:
        return None
    own = {str(k): str(v) for k, v in (run["meta"].get("clients") or {}).items()}
    clients = {**host_clients(history), **own}
    ran = {r[0] for r in history.query("SELECT DISTINCT host FROM results WHERE run_id=?",
                                       (run["run_id"],))} | set(own)
    return sorted(h for h in ran if h in clients and user.sees(clients[h]))


def first_result_ts(history: History, hosts: Sequence[str]) -> float | None:
    """When the oldest stored result of these hosts was taken (one index seek per host
    and check, never a scan of the results)."""
    if not hosts:
        return None
    marks = ",".join("?" * len(hosts))
    rows = history.query(
        "SELECT MIN((SELECT MIN(r.ts) FROM results r WHERE r.host=c.host"
        f" AND r.check_name=c.check_name)) FROM current c WHERE c.host IN ({marks})",
        tuple(hosts))
    return float(rows[0][0]) if rows and rows[0][0] is not None else None
