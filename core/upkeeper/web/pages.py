"""The dashboard's pages: fleet, client, host, runs (with live progress) and actions.

A client-scoped user asking for a client, host or run outside their scope gets the same
404 as for one that does not exist, so names do not leak.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from upkeeper.web import data
from upkeeper.web.actions import ActionError
from upkeeper.web.charts import line_chart, status_timeline
from upkeeper.web.render import render
from upkeeper.web.site import read_form, site_of, user_of

DAY = 86400.0
#: Metric name endings charted on the client page, with their titles.
CLIENT_CHARTS = ((":used_pct", "Disk used %"), ("pending_security", "Pending security updates"),
                 ("age_hours", "Backup age (hours)"))
MUTE_PERIODS = {"1h": 3600, "4h": 4 * 3600, "1d": DAY, "3d": 3 * DAY, "7d": 7 * DAY}


def visible_hosts(request: Request) -> dict[str, str]:
    """Host -> client of every host the user may see."""
    user = user_of(request)
    return {h: c for h, c in data.host_clients(site_of(request).history).items()
            if user.sees(None if c == data.NO_CLIENT else c)}


def _scope(request: Request) -> list[str] | None:
    """Hosts to restrict queries to (None: the user sees everything)."""
    return sorted(visible_hosts(request)) if user_of(request).scoped else None


def _days(request: Request) -> int:
    return 90 if request.query_params.get("days") == "90" else 30


def fleet(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    views = data.clients(site.history, user.clients if user.scoped else None)
    runs = data.last_runs(site.history, _scope(request))
    totals: dict[str, int] = {}
    for v in views:
        for status, n in v.counts.items():
            totals[status] = totals.get(status, 0) + n
    return render(request, "fleet.html.j2", {"clients": views, "runs": runs,
                                             "totals": totals})


def client_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    name = request.path_params["client"]
    views = data.clients(site.history, [name]) if user.sees(name) else []
    if not views:
        raise HTTPException(404)
    view, days = views[0], _days(request)
    end = time.time()
    start = end - days * DAY
    checks = sorted({c.name for c in view.cells})
    matrix = {h: {} for h in view.hosts}
    for c in view.cells:
        matrix[c.host][c.name] = c
    latest = data.latest_metrics(site.history, [c.result_id for c in view.cells
                                                if c.check.startswith(("disk.", "patching."))])
    disks = []
    for c in view.cells:
        if c.check == "disk.usage":
            m = latest.get(c.result_id, {})
            for key, value in sorted(m.items()):
                if key.endswith(":used_pct"):
                    mount = key[:-len(":used_pct")]
                    disks.append({"host": c.host, "mount": mount, "used_pct": value,
                                  "days_to_full": m.get(f"{mount}:days_to_full"),
                                  "status": c.status})
    patches = [{"cell": c, "metrics": latest.get(c.result_id, {})} for c in view.cells
               if c.check.startswith("patching.")]
    backups = [c for c in view.cells if c.check.startswith("backup.")]
    return render(request, "client.html.j2", {
        "client": view, "checks": checks, "matrix": matrix, "days": days,
        "charts": _client_charts(site.history, view.hosts, start, end),
        "disks": disks, "patches": patches, "backups": backups,
        "acks": site.actions.acks(view.hosts), "report": _report_link(name)})


def _report_link(client: str) -> str | None:
    return None


def _client_charts(history: Any, hosts: list[str], start: float, end: float) -> list[Any]:
    if not hosts:
        return []
    marks = ",".join("?" * len(hosts))
    rows = history.query(f"SELECT host, metric FROM metrics WHERE host IN ({marks})"
                         " AND ts>=? GROUP BY host, metric", (*hosts, start))
    charts = []
    for suffix, title in CLIENT_CHARTS:
        names = [(r["host"], r["metric"]) for r in rows if r["metric"].endswith(suffix)]
        series = []
        for host, metric in names:
            label = host if metric == suffix.lstrip(":") else f"{host} {metric[:-len(suffix)]}"
            series.append((label, data.series(history, host, metric, start)))
        if series:
            # The highest last values first: those are the ones to look at.
            series.sort(key=lambda s: -(s[1][-1][1] if s[1] else 0))
            charts.append(line_chart(title, series[:8], start, end))
    return charts


def host_page(request: Request) -> Response:
    site = site_of(request)
    host = request.path_params["host"]
    clients = visible_hosts(request)
    if host not in clients:
        raise HTTPException(404)
    days = _days(request)
    end = time.time()
    start = end - days * DAY
    cells = sorted(data.current(site.history, [host]), key=lambda c: c.name)
    metrics = data.metric_names(site.history, host, start)
    details = {r["name"]: r for r in data.last_results(site.history, host, limit=400)}
    rows = []
    for c in cells:
        charts = [line_chart(m, [(m, data.series(site.history, host, m, start))], start, end)
                  for m in metrics.get(c.check, [])[:6]]
        rows.append({"cell": c, "charts": charts, "last": details.get(c.name),
                     "timeline": status_timeline(data.timeline(site.history, host, c.name,
                                                               start), start, end)})
    return render(request, "host.html.j2", {
        "host": host, "client": clients[host], "rows": rows, "days": days,
        "windows": _windows(site.config.inventory.get(host)),
        "mutes": site.actions.mutes([host]), "acks": site.actions.acks([host]),
        "periods": list(MUTE_PERIODS)})


def _windows(host_vars: Any) -> dict[str, Any] | None:
    if not host_vars:
        return None
    from datetime import datetime, timezone

    from upkeeper.engine.windows import HostWindows

    try:
        hw = HostWindows(host_vars)
    except ValueError as exc:
        return {"error": str(exc)}
    now = datetime.now(timezone.utc)
    return {"state": hw.state(now).reason, "tz": hw.tz.key,
            "upcoming": [(s.astimezone(hw.tz), e.astimezone(hw.tz), w)
                         for s, e, w in hw.upcoming(now, 5)]}


def runs_page(request: Request) -> Response:
    from upkeeper.store.runs import list_runs

    runs = list_runs(site_of(request).history, limit=100, hosts=_scope(request))
    return render(request, "runs.html.j2", {"runs": runs})


def _run_or_404(request: Request) -> tuple[dict[str, Any], list[str] | None]:
    site = site_of(request)
    run = data.run_row(site.history, request.path_params["run_id"])
    scope = _scope(request)
    if run is None or (scope is not None and
                       not data.run_hosts(site.history, run["run_id"]) & set(scope)):
        raise HTTPException(404)
    return run, scope


def run_page(request: Request) -> Response:
    run, scope = _run_or_404(request)
    results = data.run_results(site_of(request).history, run["run_id"], scope)
    return render(request, "run.html.j2", {"run": run, "results": results})


def run_progress(request: Request) -> Response:
    """New results of a run since ``after`` (a result id), for the live page."""
    run, scope = _run_or_404(request)
    try:
        after = int(request.query_params.get("after", "0"))
    except ValueError:
        after = 0
    results = data.run_results(site_of(request).history, run["run_id"], scope, after)
    return JSONResponse({"status": run["status"], "finished": run["finished"] is not None,
                         "results": results})


def actions_page(request: Request) -> Response:
    from upkeeper.web.audit import entries

    site, user = site_of(request), user_of(request)
    scope = _scope(request)
    return render(request, "actions.html.j2", {
        "mutes": site.actions.mutes(scope), "acks": site.actions.acks(scope).values(),
        "audit": entries(site.history) if not user.scoped else []})


def _operator_host(request: Request) -> str:
    host = request.path_params["host"]
    if host not in visible_hosts(request):
        raise HTTPException(404)
    if not user_of(request).can_act:
        raise HTTPException(403)
    return host


async def _form(request: Request) -> dict[str, str]:
    form = getattr(request.state, "form", None)
    return form if form is not None else await read_form(request)


async def mute(request: Request) -> Response:
    host = _operator_host(request)
    form = await _form(request)
    seconds = MUTE_PERIODS.get(form.get("period", ""))
    if seconds is None:
        raise HTTPException(400)
    try:
        site_of(request).actions.mute(user_of(request), host, form.get("check") or None,
                                      seconds, form.get("reason", ""))
    except ActionError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(f"/hosts/{host}", 303)


async def acknowledge(request: Request) -> Response:
    host = _operator_host(request)
    form = await _form(request)
    name, status = form.get("check", ""), form.get("status", "")
    if not name or status not in data.SEVERITY:
        raise HTTPException(400)
    site_of(request).actions.acknowledge(user_of(request), host, name, status,
                                         form.get("note", ""))
    return RedirectResponse(form.get("back") if form.get("back", "").startswith("/")
                            and not form.get("back", "").startswith("//")
                            else f"/hosts/{host}", 303)


def routes() -> list[Route]:
    return [
        Route("/", fleet), Route("/clients/{client}", client_page),
        Route("/hosts/{host}", host_page), Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page), Route("/runs/{run_id}/progress.json", run_progress),
        Route("/actions", actions_page),
        Route("/hosts/{host}/mute", mute, methods=["POST"]),
        Route("/hosts/{host}/ack", acknowledge, methods=["POST"]),
    ]
