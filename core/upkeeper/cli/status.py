"""``upkeeper status``: is the daemon alive, what runs next, which slots went wrong.

It reads the state dir and never creates one. On the daemon's own host it checks the
recorded process (pid and start time) at once; elsewhere it goes by heartbeat age.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import click

from upkeeper.cli.state import duration, open_history, resolve_state_dir
from upkeeper.schedule.instance import ProcessIdentity
from upkeeper.store.history import DB_NAME, History

UTC = timezone.utc


def daemon_state(row: Any, info: dict[str, Any], age: float) -> tuple[str, str | None]:
    """``running``, ``stalled`` (its process runs but records no heartbeat), ``dead`` or
    ``stopped``, and why. On this host the recorded process is checked (pid and start
    time) instead of waiting for three missed heartbeats."""
    if row["stopped"] is not None:
        return "stopped", row["stop_reason"]
    stale = age > 3 * row["interval"] + 10
    who = ProcessIdentity.from_dict(info.get("process"))
    alive = who.alive() if who is not None else None
    if alive is False:
        return "dead", f"pid {row['pid']} is gone: killed or crashed, no clean shutdown"
    if alive is True and stale:
        return "stalled", f"pid {row['pid']} runs but has recorded no heartbeat for {age:.0f}s"
    if stale:
        return "dead", f"no heartbeat for {age:.0f}s"
    return "running", None


def collect_status(history: History, now: datetime, since: datetime) -> dict[str, Any]:
    """Daemon liveness, its jobs, and slot outcomes since ``since`` (for ``status``)."""
    out: dict[str, Any] = {"daemon": None, "jobs": [], "problems": [], "counts": {},
                           "failing_channels": []}
    if not history.query("SELECT 1 FROM sqlite_master WHERE name='schedule_daemons'"):
        return out  # history of ad hoc runs only: serve never ran here
    rows = history.query("SELECT * FROM schedule_daemons ORDER BY started DESC LIMIT 1")
    if rows:
        d = rows[0]
        beat = datetime.fromtimestamp(d["heartbeat"], tz=UTC)
        age = (now - beat).total_seconds()
        try:
            info = json.loads(d["info"] or "{}")
        except ValueError:
            info = {}
        state, why = daemon_state(d, info, age)
        out["daemon"] = {"id": d["id"], "pid": d["pid"], "host": d["hostname"],
                         "state": state, "why": why, "heartbeat": beat.isoformat(),
                         "heartbeat_age_s": round(age, 1),
                         "started": datetime.fromtimestamp(d["started"], tz=UTC).isoformat(),
                         "stop_reason": d["stop_reason"], "last_error": info.get("last_error"),
                         "running": info.get("running", [])}
        for job in info.get("jobs", []):
            last = history.query(
                "SELECT state, status, run_id, finished, reason FROM schedule_slots WHERE job=?"
                " AND state IN ('done','failed','interrupted') ORDER BY due DESC LIMIT 1",
                (job["job"],))
            job["last"] = dict(last[0]) if last else None
            out["jobs"].append(job)
    if not history.query("SELECT 1 FROM sqlite_master WHERE name='schedule_slots'"):
        return out
    out["problems"] = [dict(r) for r in history.query(
        "SELECT job, schedule, due, state, run_id, reason, count FROM schedule_slots"
        " WHERE recorded>=? AND state IN ('skipped','missed','failed','interrupted')"
        " ORDER BY due", (since.timestamp(),))]
    out["counts"] = {r["state"]: r["n"] for r in history.query(
        "SELECT state, SUM(count) AS n FROM schedule_slots WHERE recorded>=? GROUP BY state",
        (since.timestamp(),))}
    from upkeeper.after_run.ledger import failing_channels

    out["failing_channels"] = failing_channels(history)
    return out


def _fmt_ts(value: float | str | None) -> str:
    if value is None:
        return "-"
    dt = (datetime.fromisoformat(value) if isinstance(value, str)
          else datetime.fromtimestamp(value, tz=UTC))
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.command()
@click.option("--state-dir", "state_opt", type=click.Path(file_okay=False))
@click.option("--since", default="24h", show_default=True,
              help="How far back to report skipped/missed/failed slots.")
@click.option("--slots", "show_slots", is_flag=True,
              help="List every slot recorded since --since (run, skipped, missed...).")
@click.option("--job", help="Only this job (playbook file) with --slots.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def status(ctx: click.Context, state_opt: str | None, since: str, show_slots: bool,
           job: str | None, fmt: str) -> None:
    """Daemon heartbeat, each job's next and last run, skipped and missed slots, and
    alert channels whose last delivery failed.

    Exit 0 running and clean, 1 problems since --since or an alert channel failing,
    2 daemon stopped, dead or stalled, 3 never started.
    """
    state_dir = resolve_state_dir(ctx, state_opt)
    if not (state_dir / DB_NAME).is_file():
        what = ("does not exist" if not state_dir.exists() else f"has no {DB_NAME}")
        message = f"serve: never started with this state dir: {state_dir} {what}"
        click.echo(json.dumps({"daemon": None, "error": message}) if fmt == "json"
                   else message)
        sys.exit(3)
    history = open_history(state_dir)
    now = datetime.now(UTC)
    start = now - timedelta(seconds=duration(since, "--since"))
    if show_slots:
        if not history.query("SELECT 1 FROM sqlite_master WHERE name='schedule_slots'"):
            return
        sql = "SELECT * FROM schedule_slots WHERE recorded>=?"
        args: list[Any] = [start.timestamp()]
        if job:
            sql += " AND job=?"
            args.append(job)
        slots = [dict(r) for r in history.query(sql + " ORDER BY due, job, schedule",
                                                tuple(args))]
        if fmt == "json":
            click.echo(json.dumps(slots, indent=1, default=str))
        for s in slots if fmt == "text" else []:
            count = f" x{s['count']}" if s["count"] > 1 else ""
            click.echo(f"{_fmt_ts(s['due'])}  {s['job']}#{s['schedule']}  {s['state']}{count}"
                       f"  {s['status'] or '-'}  {s['run_id'] or '-'}  {s['reason'] or ''}")
        return
    report = collect_status(history, now, start)
    from upkeeper.sites.liveness import offline_sites

    report["sites_offline"] = [st.to_dict() for st in offline_sites(history)]
    history.close()
    code = _status_code(report)
    if fmt == "json":
        click.echo(json.dumps(report, indent=1, default=str))
        sys.exit(code)
    for st in report["sites_offline"]:
        click.echo(f"site OFFLINE: {st['site']}: no live worker, last seen "
                   f"{_fmt_ts(st['last_seen'])}, {st['queued']} job(s) queued")
    d = report["daemon"]
    if d is None:
        click.echo("serve: never started with this state dir")
        sys.exit(code)
    reason = f" ({d['why']})" if d["why"] else ""
    click.echo(f"serve: {d['state'].upper()}{reason}  pid {d['pid']} on {d['host']}, last"
               f" heartbeat {_fmt_ts(d['heartbeat'])} ({d['heartbeat_age_s']:.0f}s ago),"
               f" started {_fmt_ts(d['started'])}")
    if d["last_error"]:
        click.echo(f"last error: {d['last_error']}")
    for r in d["running"]:
        click.echo(f"running: {r['job']} run {r['run_id']} (slot {_fmt_ts(r['due'])})")
    for j in report["jobs"]:
        last = j["last"]
        done = (f"last {last['state']} {last['status'] or ''} {_fmt_ts(last['finished'])}"
                if last else "never run")
        click.echo(f"  {j['job']}#{j['schedule']}  {j['every']}  next {_fmt_ts(j['next_run'])}"
                   f"  {done}")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items())) or "none"
    click.echo(f"slots since {_fmt_ts(start.timestamp())}: {counts}")
    for p in report["problems"]:
        n = f" x{p['count']}" if p["count"] > 1 else ""
        click.echo(f"  {p['state']}{n}: {p['job']}#{p['schedule']} slot {_fmt_ts(p['due'])}:"
                   f" {p['reason'] or ''}")
    for c in report["failing_channels"]:
        to = f" -> {c['target']}" if c["target"] else ""
        click.echo(f"alerting FAILED: {c['channel']} ({c['notifier']}{to}) since "
                   f"{_fmt_ts(c['failing_since'])}, {c['failures']} failed: {c['error']}")
    sys.exit(code)


def _status_code(report: dict[str, Any]) -> int:
    d = report["daemon"]
    if d is None:
        return 3
    if d["state"] != "running":
        return 2
    return 1 if (report["problems"] or report.get("failing_channels")
                 or report.get("sites_offline")) else 0
