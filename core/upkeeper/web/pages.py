"""The dashboard's pages: fleet, client, host, runs (with live progress) and actions.

A client-scoped user asking for a client, host or run outside their scope gets the same
404 as for one that does not exist, so names do not leak.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from upkeeper.web import data, docs
from upkeeper.web.actions import ActionError
from upkeeper.web.charts import line_chart, status_timeline
from upkeeper.web.render import render
from upkeeper.web.site import read_form, site_of, user_of

DAY = 86400.0
#: Metric name endings charted on the client page, with their titles.
CLIENT_CHARTS = ((":used_pct", "Disk used %"), ("pending_security", "Pending security updates"),
                 ("age_hours", "Backup age (hours)"))
MUTE_PERIODS = {"1h": 3600, "4h": 4 * 3600, "1d": DAY, "3d": 3 * DAY, "7d": 7 * DAY}


def _scope(request: Request) -> list[str] | None:
    """Hosts to restrict queries to (None: the user sees everything)."""
    return data.visible_hosts(site_of(request).history, user_of(request))


def _days(request: Request) -> int:
    return 90 if request.query_params.get("days") == "90" else 30


def fleet(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    state = data.fleet(site.history, user)
    runs = data.last_runs(site.history, user)
    known = {c.name for c in state.clients}
    unchecked: dict[str, list[str]] = {}
    for host, hv in sorted(site.config.inventory.items()):
        name = str(hv.get("client") or "")
        if name and name not in known and user.sees(name):
            unchecked.setdefault(name, []).append(host)
    return render(request, "fleet.html.j2", {
        "clients": [(c, data.problems(c)) for c in state.clients], "runs": runs,
        "totals": state.counts, "unchecked": sorted(unchecked.items()),
        "offline_sites": docs.offline_sites(site.history, user)})


def client_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    name = request.path_params["client"]
    view = data.client(site.history, user, name)
    if view is None:
        raise HTTPException(404)
    days = _days(request)
    end = time.time()
    start = end - days * DAY
    cells = [c for h in view.hosts for c in h.checks]
    hosts = [h.host for h in view.hosts]
    checks = sorted({c.name for c in cells})
    matrix: dict[str, dict[str, Any]] = {h: {} for h in hosts}
    for c in cells:
        matrix[c.host][c.name] = c
    latest = data.latest_metrics(site.history, [c.result_id for c in cells
                                                if c.check.startswith(("disk.", "patching."))])
    disks = []
    for c in cells:
        if c.check == "disk.usage":
            m = latest.get(c.result_id, {})
            for key, value in sorted(m.items()):
                if key.endswith(":used_pct"):
                    mount = key[:-len(":used_pct")]
                    disks.append({"host": c.host, "mount": mount, "used_pct": value,
                                  "days_to_full": m.get(f"{mount}:days_to_full")})
    patching = [c for c in cells if c.check.startswith("patching.")]
    # Compliance is what the status check measures; an apply action's rows say little.
    measured = [c for c in patching if {"pending_total", "pending_security"}
                & set(latest.get(c.result_id, {}))]
    patches = [{"cell": c, "metrics": latest.get(c.result_id, {})}
               for c in measured or patching]
    backups = [c for c in cells if c.check.startswith("backup.")]
    return render(request, "client.html.j2", {
        "client": view, "checks": checks, "matrix": matrix, "days": days,
        "down": {h.host: h.down_reason for h in view.hosts if h.down},
        "charts": _client_charts(site.history, hosts, start, end),
        "disks": disks, "patches": patches, "backups": backups,
        "acks": site.actions.acks(hosts),
        # A monthly report is of one client; hosts without one have none.
        "report": None if name == data.NO_CLIENT else _report_link(site, name, hosts),
        "docs_link": docs.docs_link(site.history, name)})


def _report_link(site: Any, client: str, hosts: list[str]) -> dict[str, Any]:
    """The client report's URL and the months offered: those since the client's first
    result (up to 13), last month first and this month last; a client whose history
    starts this month is offered only this month."""
    from datetime import datetime

    from upkeeper.engine.windows import get_zone
    from upkeeper.monthly.period import client_timezone

    zone = get_zone(client_timezone(v for v in site.config.inventory.values()
                                    if str(v.get("client")) == client))
    today = datetime.now(zone).date()
    first = data.first_result_ts(site.history, hosts)
    oldest = (datetime.fromtimestamp(first, zone).strftime("%Y-%m") if first is not None
              else f"{today.year:04d}-{today.month:02d}")
    months = []
    year, month = today.year, today.month
    for _ in range(13):
        months.append(f"{year:04d}-{month:02d}")
        if months[-1] <= oldest:
            break
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return {"url": f"/clients/{quote(client)}/report", "months": months[1:] + months[:1]}


def client_report(request: Request) -> Response:
    """The monthly client report (``?month=YYYY-MM&format=html|md``) as a download."""
    from upkeeper.monthly.docs import report_sources
    from upkeeper.monthly.period import PeriodError, client_timezone, month_period
    from upkeeper.monthly.render import render_client_report
    from upkeeper.monthly.report import MonthlyReportError, build_client_report

    site, user = site_of(request), user_of(request)
    name = request.path_params["client"]
    if data.client(site.history, user, name) is None:
        raise HTTPException(404)
    fmt = "md" if request.query_params.get("format") == "md" else "html"
    # Stripped here as month_period strips it: the file name below is a header value.
    month = request.query_params.get("month", "").strip()
    inventory = site.config.inventory
    host_vars = {h: v for h, v in inventory.items()} or None
    zone = client_timezone(v for v in inventory.values() if str(v.get("client")) == name)
    try:
        period = month_period(month, zone)
        # The same fixes and documentation changes as ``upkeeper report --month``.
        sources = report_sources(site.history, name)
        report = build_client_report(site.history, name, period, host_vars=host_vars,
                                     fixes=sources.fixes, docs=sources.docs)
    except (PeriodError, MonthlyReportError) as exc:
        return render(request, "error.html.j2", {"code": 404, "text": str(exc)}, status=404)
    text = render_client_report(report, fmt)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return Response(text, media_type="text/markdown" if fmt == "md" else "text/html", headers={
        "content-disposition": f'attachment; filename="{safe}-{month}.{fmt}"',
        # The report is self-contained (its own styles); nothing in it may run.
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline';"
                                   " img-src data:; sandbox"})


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
    name = request.path_params["host"]
    state = data.host(site.history, user_of(request), name)
    if state is None:
        raise HTTPException(404)
    days = _days(request)
    end = time.time()
    start = end - days * DAY
    points = data.host_series(site.history, name, start)
    recent: dict[str, list[dict[str, Any]]] = {}
    for r in data.last_results(site.history, name, limit=400):  # newest first
        recent.setdefault(r["name"], []).append(r)
    rows = []
    for c in sorted(state.checks, key=lambda c: c.name):
        charts = [line_chart(m, [(m, pts)], start, end)
                  for m, pts in sorted(points.get(c.name, {}).items())[:6]]
        earlier = recent.get(c.name, [])
        rows.append({"cell": c, "charts": charts, "last": earlier[0] if earlier else None,
                     "earlier": earlier[1:6],
                     "timeline": status_timeline(data.timeline(site.history, name, c.name,
                                                               start), start, end)})
    return render(request, "host.html.j2", {
        "host": name, "state": state, "client": state.client, "rows": rows, "days": days,
        "windows": _windows(site.config.inventory.get(name)),
        "mutes": site.actions.mutes([name]), "acks": site.actions.acks([name]),
        "periods": list(MUTE_PERIODS), "via": docs.host_site(site.history, name),
        "facts": docs.host_facts(site.history, name, state.client)})


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
    runs = data.runs(site_of(request).history, user_of(request), limit=100)
    return render(request, "runs.html.j2", {"runs": runs})


def _run_or_404(request: Request) -> tuple[dict[str, Any], list[str] | None]:
    site = site_of(request)
    run = data.run_row(site.history, request.path_params["run_id"])
    if run is None:
        raise HTTPException(404)
    hosts = data.run_visible_hosts(site.history, run, user_of(request))
    if hosts is not None and not hosts:
        raise HTTPException(404)
    if hosts is not None:
        run = {**run, "status": data.scoped_status(site.history, run, hosts)}
    return run, hosts


def run_page(request: Request) -> Response:
    run, scope = _run_or_404(request)
    results = data.run_results(site_of(request).history, run["run_id"], scope)
    fixes = [f for f in run["meta"].get("remediation") or []
             if isinstance(f, dict) and (scope is None or f.get("host") in scope)]
    return render(request, "run.html.j2", {"run": run, "results": results, "fixes": fixes})


def run_progress(request: Request) -> Response:
    """New results of a run since ``after`` (a result id), for the live page."""
    run, scope = _run_or_404(request)
    try:
        # Within SQLite's integers (a bigger number was an OverflowError: a 500).
        after = max(0, min(int(request.query_params.get("after", "0")), 2**63 - 1))
    except ValueError:
        after = 0
    results = data.run_results(site_of(request).history, run["run_id"], scope, after)
    return JSONResponse({"status": run["status"], "finished": run["finished"] is not None,
                         "results": results})


def actions_page(request: Request) -> Response:
    site, user = site_of(request), user_of(request)
    scope = _scope(request)
    clients = list(user.clients) if user.scoped else None
    audit = site.actions.log.records(newest_first=True, limit=50) if not user.scoped else []
    return render(request, "actions.html.j2", {
        "pending": site.actions.pending(clients),
        "mutes": site.actions.mutes(scope), "acks": site.actions.acks(scope).values(),
        "audit": audit})


def _operator_host(request: Request) -> tuple[str, str | None]:
    """(host, its client) for an action on a host the operator may see."""
    name = request.path_params["host"]
    state = data.host(site_of(request).history, user_of(request), name)
    if state is None:
        raise HTTPException(404)
    if not user_of(request).can_act:
        raise HTTPException(403)
    return name, None if state.client == data.NO_CLIENT else state.client


async def _form(request: Request) -> dict[str, str]:
    form = getattr(request.state, "form", None)
    return form if form is not None else await read_form(request)


async def mute(request: Request) -> Response:
    host, client = _operator_host(request)
    form = await _form(request)
    seconds = MUTE_PERIODS.get(form.get("period", ""))
    if seconds is None:
        raise HTTPException(400)
    try:
        site_of(request).actions.mute(user_of(request), host, client,
                                      form.get("check") or None, seconds,
                                      form.get("reason", ""))
    except ActionError as exc:
        raise HTTPException(400, str(exc)) from None
    return RedirectResponse(f"/hosts/{quote(host)}", 303)


async def unmute(request: Request) -> Response:
    host, client = _operator_host(request)
    form = await _form(request)
    check = form.get("check", "")
    site_of(request).actions.unmute(user_of(request), host, client,
                                    None if check in ("", "*") else check)
    return RedirectResponse(f"/hosts/{quote(host)}", 303)


async def acknowledge(request: Request) -> Response:
    host, client = _operator_host(request)
    form = await _form(request)
    name, status = form.get("check", ""), form.get("status", "")
    if not name or status not in data.SEVERITY:
        raise HTTPException(400)
    site_of(request).actions.acknowledge(user_of(request), host, client, name, status,
                                         form.get("note", ""))
    return RedirectResponse(f"/hosts/{quote(host)}", 303)


async def decide(request: Request) -> Response:
    """Approve or deny a pending fix (``/fixes/{id}/approve`` or ``.../deny``)."""
    user = user_of(request)
    verb = request.path_params["verb"]
    if verb not in ("approve", "deny"):
        raise HTTPException(404)
    if not user.can_act:
        raise HTTPException(403)
    form = await _form(request)
    clients = list(user.clients) if user.scoped else None
    try:
        site_of(request).actions.decide(user, request.path_params["approval"],
                                        verb == "approve",
                                        form.get("reason", ""), clients)
    except LookupError:
        raise HTTPException(404) from None
    except ActionError as exc:
        return render(request, "error.html.j2", {"code": 409, "text": str(exc)}, status=409)
    return RedirectResponse("/actions", 303)


def routes() -> list[Route]:
    return [
        Route("/", fleet),
        Route("/clients/{client}", client_page),
        Route("/clients/{client}/report", client_report),
        Route("/hosts/{host}", host_page),
        Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/progress.json", run_progress),
        Route("/actions", actions_page),
        Route("/hosts/{host}/mute", mute, methods=["POST"]),
        Route("/hosts/{host}/unmute", unmute, methods=["POST"]),
        Route("/hosts/{host}/ack", acknowledge, methods=["POST"]),
        Route("/fixes/{approval}/{verb:str}", decide, methods=["POST"]),
    ]
