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
    if not user.sees(name):
        return None
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


def last_runs(history: History, hosts: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The newest run of each playbook (of those that touched ``hosts``)."""
    from upkeeper.store.runs import list_runs

    names = [r[0] for r in history.query("SELECT DISTINCT playbook FROM runs ORDER BY 1")]
    out = []
    for name in names:
        out += list_runs(history, limit=1, playbooks=[name],
                         hosts=list(hosts) if hosts is not None else None)
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
